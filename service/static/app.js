// Progressive enhancement only: suggest organisation names while typing. Pages work without it.
(function () {
  "use strict";
  var input = document.getElementById("applicant");
  var list = document.getElementById("organisation-names");
  if (!input || !list) { return; }
  input.setAttribute("list", "organisation-names");
  input.setAttribute("autocomplete", "off");
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    var q = input.value.trim();
    if (q.length < 3) { return; }
    timer = setTimeout(function () {
      fetch("/api/v1/organisations?q=" + encodeURIComponent(q))
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (data) {
          while (list.firstChild) { list.removeChild(list.firstChild); }
          data.items.slice(0, 10).forEach(function (o) {
            var opt = document.createElement("option");
            opt.value = o.name;
            list.appendChild(opt);
          });
        })
        .catch(function () { /* suggestions are optional */ });
    }, 250);
  });
}());

// Progressive enhancement only: suggest organisation names while typing. Pages work without it.
(function () {
  "use strict";

  function suggest(input, list, onPick) {
    input.setAttribute("list", list.id);
    input.setAttribute("autocomplete", "off");
    var timer = null;
    var names = [];
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (onPick && names.indexOf(input.value) >= 0) { onPick(input.value); return; }
      if (q.length < 2) { return; }
      timer = setTimeout(function () {
        fetch("/api/v1/organisations?q=" + encodeURIComponent(q))
          .then(function (r) { return r.ok ? r.json() : { items: [] }; })
          .then(function (data) {
            while (list.firstChild) { list.removeChild(list.firstChild); }
            names = [];
            data.items.slice(0, 10).forEach(function (o) {
              var opt = document.createElement("option");
              opt.value = o.name;
              opt.label = [o.city, o.country].filter(Boolean).join(", ");
              names.push(o.name);
              list.appendChild(opt);
            });
          })
          .catch(function () { /* suggestions are optional */ });
      }, 200);
    });
  }

  var applicant = document.getElementById("applicant");
  var applicantList = document.getElementById("organisation-names");
  if (applicant && applicantList) { suggest(applicant, applicantList, null); }

  var add = document.getElementById("add-partner");
  var partners = document.getElementById("partners");
  if (add && partners) {
    add.closest(".js-only").hidden = false;
    suggest(add, document.getElementById("partner-names"), function (name) {
      var lines = partners.value.split("\n").filter(function (l) { return l.trim(); });
      if (lines.indexOf(name) < 0) { lines.push(name); }
      partners.value = lines.join("\n");
      add.value = "";
    });
  }
}());

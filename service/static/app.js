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

  // Add to / remove from the draft without reloading: the same POST as without JavaScript, then the
  // panel and the clicked result are swapped for their new versions, and the focus stays put.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("draft-form") || !window.fetch || !window.DOMParser) { return; }
    event.preventDefault();
    var id = form.querySelector("input[name=org_id]").value;
    var fromPanel = !!form.closest("#eligibility");
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var panel = document.getElementById("eligibility");
        var fresh = doc.getElementById("eligibility");
        if (panel && fresh) { panel.replaceWith(fresh); }
        var card = document.getElementById("org-" + id);
        var newCard = doc.getElementById("org-" + id);
        if (card && newCard) {
          var old = card.querySelector(".draft-form");
          var replacement = newCard.querySelector(".draft-form");
          if (old && replacement) { old.replaceWith(replacement); }
        } else if (card) {  // now a member, so no longer a suggestion: the card stays, its button flips
          var op = card.querySelector(".draft-form input[name=op]");
          var button = card.querySelector(".draft-form button");
          var adding = op.value === "add";
          var name = card.querySelector("h3 a, h2 a").textContent;
          op.value = adding ? "remove" : "add";
          button.className = op.value;
          button.textContent = adding ? button.getAttribute("data-remove") : button.getAttribute("data-add");
          button.setAttribute("aria-label", button.textContent + ": " + name);
        }
        var target = fromPanel ? document.querySelector("#eligibility h2") : card && card.querySelector(".draft-form button");
        if (target) { if (fromPanel) { target.setAttribute("tabindex", "-1"); } target.focus(); }
      })
      .catch(function () { form.submit(); });  // fall back to the plain form
  });

  // A visible counter on the idea: 5,000 characters at most, said before the form refuses more.
  var idea = document.getElementById("idea");
  var counter = document.getElementById("idea-count");
  if (idea && counter) {
    var max = 5000;
    var lang = document.documentElement.lang || "en"; // numbers as the page's language writes them
    var fill = function (template, n) {
      return template.replace("{n}", n.toLocaleString(lang)).replace("{max}", max.toLocaleString(lang));
    };
    counter.hidden = false;
    var update = function () {
      var n = idea.value.length;
      counter.textContent = n <= max ? fill(counter.getAttribute("data-of"), n) : fill(counter.getAttribute("data-over"), n - max);
      counter.classList.toggle("over", n > max);
    };
    idea.addEventListener("input", update);
    update();
  }
}());

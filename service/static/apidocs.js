// The interactive API reference, from Swagger UI files this site serves itself (no CDN).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof SwaggerUIBundle === "undefined") { return; }
  root.textContent = "";
  SwaggerUIBundle({ url: root.getAttribute("data-spec"), domNode: root, deepLinking: false });
}());

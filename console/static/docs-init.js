// Boots Swagger UI on /docs (a file, not an inline script: the page's CSP allows only 'self').
// validatorUrl: null, or the page would load a badge from the validator's host.
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();

// /docs: Swagger UI on the app's own OpenAPI document, from /static/vendor (no CDN), started here
// rather than in an inline script, which the Content-Security-Policy forbids.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // the default sends the document to validator.swagger.io
  });
});

// Starts ReDoc on this server's /openapi.json (kanmon.web.docs); no web fonts, nothing fetched from elsewhere.
"use strict";
(function () {
  const root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapi, { hideDownloadButton: false }, root);
})();

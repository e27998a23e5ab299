// Copy the browser builds we serve from node_modules into static/vendor/ (git-ignored).
// Note: htmx.org/dist/ext/ws.js is the old htmx 1 extension; htmx 2 needs htmx-ext-ws.
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const files = {
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "htmx-ext-ws.js": "node_modules/htmx-ext-ws/dist/ws.js",
  "hls.min.js": "node_modules/hls.js/dist/hls.min.js",
};
const out = path.join(root, "static", "vendor");
fs.mkdirSync(out, { recursive: true });
for (const [name, src] of Object.entries(files)) {
  fs.copyFileSync(path.join(root, src), path.join(out, name));
}
console.log(`vendored ${Object.keys(files).length} files into static/vendor/`);

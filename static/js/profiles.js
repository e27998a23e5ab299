// /creator/settings → Profile: show the chosen picture before it is uploaded. A data: URL,
// since the CSP allows data: images but not blob: ones. Delegated, so it keeps working
// after htmx swaps the avatar form.
(function () {
  if (window.__profilesPreview) return;
  window.__profilesPreview = true;
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-avatar-input]")) return;
    var form = input.closest("form");
    var slot = form && form.querySelector("[data-avatar-preview]");
    var file = input.files && input.files[0];
    if (!slot || !file || !/^image\/(png|jpeg|webp)$/.test(file.type)) return;
    var reader = new FileReader();
    reader.onload = function () {
      var img = document.createElement("img");
      img.className = "avatar avatar-lg";
      img.alt = "";
      img.src = reader.result;
      slot.replaceChildren(img);
    };
    reader.readAsDataURL(file);
  });
})();

// Gallery: clean share URLs (no empty fields), placeholders for thumbnails that fail,
// filters folded away on a phone unless some are set.
"use strict";
(function () {
  function broken(img) {
    var box = document.createElement("span");
    box.className = "thumb broken";
    box.textContent = "no preview";
    box.setAttribute("aria-hidden", "true");
    img.replaceWith(box);
  }
  document.querySelectorAll("img.thumb").forEach(function (img) {
    if (img.complete && img.naturalWidth === 0) {
      broken(img);
    } else {
      img.addEventListener("error", function () { broken(img); });
    }
  });

  var form = document.getElementById("filter-form");
  if (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("input[name], select[name]").forEach(function (field) {
        var drop = field.value === "" ||
          (field.name === "sort" && field.value === "newest") ||
          (field.name === "limit" && field.value === "60");
        if (drop) { field.removeAttribute("name"); }
      });
    });
  }
  var box = document.getElementById("filters-box");
  if (box && !box.dataset.open && window.matchMedia("(max-width: 820px)").matches) {
    box.open = false;
  }
})();

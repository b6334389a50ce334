// Detail page: the video timeline. Segment widths follow their durations; pressing a segment
// (or a time in the table) seeks the video there; the playing segment is marked.
"use strict";
(function () {
  var video = document.getElementById("player");
  var segments = Array.prototype.slice.call(document.querySelectorAll(".segment"));
  segments.forEach(function (button) {
    var span = parseFloat(button.dataset.span);
    if (span > 0) { button.style.flexGrow = String(span); }
  });
  if (!video) { return; }
  document.querySelectorAll("[data-start]").forEach(function (button) {
    button.addEventListener("click", function () {
      var start = parseFloat(button.dataset.start) || 0;
      video.currentTime = start + 0.001;
      video.focus();
    });
  });
  function mark() {
    var t = video.currentTime;
    segments.forEach(function (button) {
      var start = parseFloat(button.dataset.start) || 0;
      var end = start + (parseFloat(button.dataset.span) || 0);
      var on = t >= start && t < end;
      button.classList.toggle("playing", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }
  video.addEventListener("timeupdate", mark);
  video.addEventListener("seeked", mark);
  mark();
})();

// The console's only script: show each time in the viewer's time zone. The
// pages are rendered in UTC and work without it.
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var t = new Date(el.getAttribute("datetime"));
  if (isNaN(t)) return;
  el.title = el.textContent;
  el.textContent = t.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  el.setAttribute("data-local", "1");
});

// Live updates of the explorer's home page from the node's event stream (GET /v1/events, Server-Sent Events).
// The page is complete without this file: it only adds new blocks as they commit and keeps the height current.
"use strict";
(function () {
  var MAX_ROWS = 20;
  var rows = document.getElementById("block-rows");
  var state = document.getElementById("live-state");
  if (!rows || typeof EventSource === "undefined") {
    return;
  }
  var names = {};  // validator names by address, for the proposer column
  try { names = JSON.parse(rows.getAttribute("data-names") || "{}"); } catch (e) { names = {}; }

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) { s = "0" + s; }
    return s;
  }

  function formatTime(ms) {  // as the server writes it: 2026-01-31 12:00:00.123 UTC
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." +
      pad(d.getUTCMilliseconds(), 3) + " UTC";
  }

  function shorten(text, keep) {
    return text.length <= keep + 8 ? text : text.slice(0, keep) + "\u2026" + text.slice(-6);
  }

  function cell(className, text, href) {  // text only: nothing from the stream is ever parsed as HTML
    var td = document.createElement("td");
    if (className) { td.className = className; }
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }

  function onBlock(event) {
    var block;
    try { block = JSON.parse(event.data); } catch (e) { return; }
    var height = Number(block.height);
    if (!Number.isSafeInteger(height) || height < 1) { return; }
    var first = rows.querySelector("tr[data-height]");
    if (first && Number(first.getAttribute("data-height")) >= height) { return; }  // already shown
    var empty = rows.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var tr = document.createElement("tr");
    tr.setAttribute("data-height", String(height));
    tr.className = "fresh";
    var link = "/blocks/" + height;
    tr.appendChild(cell("num", String(height), link));
    tr.appendChild(cell("hash", shorten(String(block.hash), 10), link));
    tr.appendChild(cell("", formatTime(Number(block.time_ms))));
    tr.appendChild(cell("num", String(block.tx_count)));
    var proposer = String(block.proposer);
    var label = Object.prototype.hasOwnProperty.call(names, proposer) ? String(names[proposer]) : shorten(proposer, 12);
    tr.appendChild(cell("hash", label, "/addresses/" + encodeURIComponent(proposer)));
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > MAX_ROWS) { rows.removeChild(rows.lastChild); }
    setText("height", String(height));
    setText("nav-height", String(height));
    setText("tip-time", formatTime(Number(block.time_ms)));
  }

  var source = new EventSource("/v1/events?kinds=block");
  source.addEventListener("block", onBlock);
  source.addEventListener("open", function () {
    if (state) { state.textContent = "live"; state.classList.add("on"); }
  });
  source.addEventListener("error", function () {
    if (state) { state.textContent = "reconnecting\u2026"; state.classList.remove("on"); }
  });
})();

// Answers as Markdown, safely: window.renderAnswer(el, text) replaces el's content with `text` rendered by
// marked and sanitized by DOMPurify (both vendored under /static/vendor/). Answers are untrusted text:
// raw HTML in them is shown as text (never parsed), and DOMPurify, with a short allow-list, removes whatever
// else could run or load: no script, no event handler, no style, no image, no form, only http(s)/mailto links,
// each opening in a new tab with rel="noopener noreferrer". Code blocks get a Copy button.
// Without the libraries (not loaded), the answer is shown as plain text, as before.
"use strict";
(function () {
  const ALLOWED_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "ul", "ol", "li",
    "strong", "em", "del", "code", "pre", "a", "table", "thead", "tbody", "tr", "th", "td"];
  const SANITIZE = {
    ALLOWED_TAGS: ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "align", "start"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i, // no javascript:, data:, vbscript:, nor relative URLs
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function plain(el, text) { el.classList.remove("md"); el.textContent = text; }

  const ready = typeof window.marked === "object" && typeof window.DOMPurify === "function" && window.DOMPurify.isSupported;
  if (!ready) { window.renderAnswer = plain; return; }

  const md = new window.marked.Marked({
    async: false,
    gfm: true,
    renderer: {
      html(token) { // raw HTML in an answer is text to read, not markup (a block keeps its lines)
        return token.block ? "<p>" + escapeHtml(token.text.trim()).replace(/\n/g, "<br>") + "</p>" : escapeHtml(token.text);
      },
      checkbox(token) { return token.checked ? "\u2611 " : "\u2610 "; }, // a task list's box, as text (no <input>)
      image(token) { // no image loads from an answer: its link instead
        return '<a href="' + escapeHtml(token.href) + '">' + escapeHtml(token.text || token.href) + "</a>";
      },
    },
  });

  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });

  function addCopyButtons(root) {
    root.querySelectorAll("pre").forEach((pre) => {
      const box = document.createElement("div");
      box.className = "code-block";
      const copy = document.createElement("button");
      copy.type = "button";
      copy.className = "copy-code";
      copy.textContent = "Copy";
      pre.replaceWith(box);
      box.append(copy, pre);
    });
  }

  window.renderAnswer = function (el, text) {
    let fragment;
    try {
      fragment = window.DOMPurify.sanitize(md.parse(String(text)), SANITIZE);
    } catch (err) { // never lose an answer to a renderer bug: show it as text
      plain(el, text);
      return;
    }
    addCopyButtons(fragment);
    el.classList.add("md");
    el.replaceChildren(fragment);
  };

  function flash(button, label) {
    button.textContent = label;
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  document.addEventListener("click", (ev) => { // one listener for every Copy button (no inline handlers)
    const button = ev.target instanceof Element ? ev.target.closest("button.copy-code") : null;
    if (!button) return;
    const pre = button.parentElement.querySelector("pre");
    if (!pre || !navigator.clipboard) { flash(button, "Copy failed"); return; }
    navigator.clipboard.writeText(pre.textContent).then(() => flash(button, "Copied"), () => flash(button, "Copy failed"));
  });
})();

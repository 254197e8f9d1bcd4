// Small DOM helpers. Text goes in through textContent only: device-provided strings
// (names, units) can never become markup.

export const $ = (sel) => document.querySelector(sel);

/** A new element with a class and, optionally, text content. */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Sets an element's text only when it differs, so unchanged text causes no re-layout. */
export function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}

/** The page's theme colours (CSS custom properties of :root), for canvases. */
export function readColors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    line: v('--accent'),
    grid: v('--grid'),
    muted: v('--muted'),
    text: v('--text'),
  };
}

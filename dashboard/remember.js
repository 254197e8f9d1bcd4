// "Remember this token on this screen": for wall screens that restart. A remembered
// token is kept in localStorage (it outlives the tab and the browser); otherwise the token
// lives in sessionStorage for this tab only. The top bar shows which, and "Forget" removes
// the remembered token at once. A token the hub refuses is forgotten too.

import { $ } from './dom.js';

const SESSION_KEY = 'telehub.token';
const REMEMBER_KEY = 'telehub.remembered-token';

/** `storage.op(...)`, or `fallback` when storage is disabled. */
function safely(op, fallback = null) {
  try {
    return op();
  } catch {
    return fallback;
  }
}

/** The token to use: `fromUrl`, else this tab's, else the one remembered on this screen. */
export function storedToken(fromUrl) {
  if (fromUrl) safely(() => sessionStorage.setItem(SESSION_KEY, fromUrl));
  return fromUrl || safely(() => sessionStorage.getItem(SESSION_KEY)) || remembered();
}

/** The token remembered on this screen, if any. */
export function remembered() {
  return safely(() => localStorage.getItem(REMEMBER_KEY));
}

/** Keeps `token` for this tab, and on this screen when `remember`. */
export function keep(token, remember) {
  safely(() => sessionStorage.setItem(SESSION_KEY, token));
  if (remember) safely(() => localStorage.setItem(REMEMBER_KEY, token));
}

/** Forgets every stored token (this tab's and this screen's). */
export function forgetAll() {
  safely(() => sessionStorage.removeItem(SESSION_KEY));
  safely(() => localStorage.removeItem(REMEMBER_KEY));
}

/** The top bar's button: "Remember on this screen" ⇄ "Remembered · forget". */
export function showRememberButton(token) {
  const button = $('#remember');
  const render = () => {
    const on = remembered() === token;
    button.textContent = on ? 'Remembered on this screen · forget' : 'Remember on this screen';
    button.setAttribute('aria-pressed', String(on));
    button.title = on
      ? 'This screen opens the dashboard without a token after a restart. Click to forget the token here.'
      : 'Keep the token in this browser so the dashboard opens after a restart (for wall screens).';
  };
  button.addEventListener('click', () => {
    if (remembered() === token) safely(() => localStorage.removeItem(REMEMBER_KEY));
    else keep(token, true);
    render();
  });
  button.hidden = false;
  render();
}

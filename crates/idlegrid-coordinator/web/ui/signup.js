// Sign-up, where the grid takes it (`idlegrid serve --signup customers,owners`): pick the kind
// of account (only those open), a name; the account's first key is shown once, then
// "Continue" signs in with it.

import { api, ApiError } from './api.js';
import { alertSlot, announce, field, h, heading, replace, uid } from './dom.js';
import { secretOnce } from './copy.js';
import { KEY_NOUN } from './keys.js';
import { moneyText } from './money.js';
import { signInAndGo } from './signin.js';

export async function signupView(main, _params, ctx) {
  main.append(heading('Sign up'));
  const alerts = alertSlot();
  main.append(alerts.el);
  let open;
  try {
    open = await api('/v1/signup', { auth: false });
  } catch (e) {
    alerts.show(e, 'Sign-up could not be loaded');
    return undefined;
  }
  if (!ctx.isCurrent()) return undefined;
  const kinds = [
    open.customers && { kind: 'customer', label: 'Customer', what: `Run jobs on the grid. A new account starts with ${moneyText(open.opening_credit)}.` },
    open.owners && { kind: 'owner', label: 'Device owner', what: 'Lend your devices to the grid and earn credits for their work.' },
  ].filter(Boolean);
  if (!kinds.length) {
    main.append(h('p', { class: 'notice', id: 'signup-closed' }, 'This grid does not take sign-ups: ask its operator for an account. ',
      h('a', { href: '#/signin' }, 'Sign in'), ' if you have a key.'));
    return undefined;
  }

  const radios = kinds.map((k, i) => {
    const id = uid('kind');
    const hintId = `${id}-hint`;
    const radio = h('input', { type: 'radio', name: 'kind', id, value: k.kind, checked: i === 0, 'aria-describedby': hintId });
    return h('div', { class: 'field check choice' }, radio,
      h('div', {}, h('label', { for: id }, k.label), h('p', { class: 'hint', id: hintId }, k.what)));
  });
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'username', maxlength: 100, required: true, spellcheck: 'false' });
  const formAlerts = alertSlot();
  const submit = h('button', { type: 'submit' }, 'Sign up');
  const form = h('form', { class: 'card narrow', novalidate: true },
    h('fieldset', {}, h('legend', {}, 'Kind of account'), radios),
    field('Name', name, 'Your account’s name on this grid: unique, 1 to 100 characters. The operator sees it.').wrap,
    formAlerts.el, h('div', { class: 'actions' }, submit));
  main.append(form, h('p', { class: 'muted' }, 'Have a key already? ', h('a', { href: '#/signin' }, 'Sign in'), '.'));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formAlerts.clear();
    name.removeAttribute('aria-invalid');
    const kind = form.querySelector('input[name="kind"]:checked').value;
    if (!name.value.trim()) {
      name.setAttribute('aria-invalid', 'true');
      formAlerts.show('Choose a name.');
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const made = await api('/v1/signup', { method: 'POST', body: { kind, name: name.value.trim() }, auth: false });
      announce(`Signed up as ${made.name}.`);
      replace(main, heading('Sign up'), created(made, ctx));
    } catch (e) {
      formAlerts.show(e instanceof ApiError ? e.message : e);
      if (e instanceof ApiError && e.code === 'name_taken') name.setAttribute('aria-invalid', 'true');
      name.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return undefined;
}

/** The new account: its key shown once, and the way on. */
function created(made, ctx) {
  const noun = KEY_NOUN[made.kind];
  const alerts = alertSlot();
  const go = h('button', { type: 'button', id: 'signup-continue' }, 'Continue');
  go.addEventListener('click', async () => {
    alerts.clear();
    go.disabled = true;
    try {
      await signInAndGo(made.secret, ctx);
    } catch (e) {
      alerts.show(e, 'Signing in failed');
      go.disabled = false;
    }
  });
  return secretOnce({
    title: `Your ${noun}`,
    secret: made.secret,
    what: noun,
    extra: [
      h('p', {}, `The account “${made.name}” is made. You sign in with this ${noun}; ${made.kind === 'owner' ? 'your devices join the grid with it too' : 'programs use it to call the API'}. Once you continue, the dashboard keeps only a session, not the ${noun}.`),
      alerts.el,
      h('div', { class: 'actions left' }, go),
    ],
  });
}

// Dialogs that ask before something is done: a question with two buttons, or a small form.
// Both are real modal <dialog>s: focus moves into them, Escape closes them, the page behind
// cannot be reached meanwhile, and focus goes back to the control that opened them.

import { alertSlot, field, h, uid } from './dom.js';

/**
 * Where focus goes when a dialog closes: the control that opened it, or, when a refreshed
 * list drew that control again meanwhile, the new control with the same `data-key`; else
 * the page's heading.
 */
function returnFocus(opener) {
  if (opener && opener.isConnected) { opener.focus(); return; }
  const key = opener && opener.dataset ? opener.dataset.key : null;
  const again = key ? document.querySelector(`[data-key="${CSS.escape(key)}"]`) : null;
  (again || document.getElementById('page-title') || document.getElementById('main')).focus();
}

/** Opens `dialog` modal; `done` runs after it closed and focus went back. */
function open(dialog, done) {
  const opener = document.activeElement;
  dialog.addEventListener('close', () => {
    dialog.remove();
    returnFocus(opener);
    done();
  }, { once: true });
  document.body.append(dialog);
  dialog.showModal();
}

/**
 * Asks before doing something that cannot be taken back. Resolves true when the person
 * confirms, false when they do not (the other button or Escape). The cautious button comes
 * first and has focus, so Enter alone does nothing harmful.
 */
export function confirmDialog({ title, text, yes, no = 'Cancel', danger = true, yesId = null }) {
  const titleId = uid('dialog');
  const noButton = h('button', { type: 'button', class: 'secondary', autofocus: true }, no);
  const yesButton = h('button', { type: 'button', class: danger ? 'danger' : null, id: yesId }, yes);
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, title),
    [].concat(text || []).map((p) => h('p', {}, p)),
    h('div', { class: 'actions' }, noButton, yesButton));
  return new Promise((resolve) => {
    let answer = false;
    noButton.addEventListener('click', () => dialog.close());
    yesButton.addEventListener('click', () => { answer = true; dialog.close(); });
    open(dialog, () => resolve(answer));
  });
}

/** An error of a form dialog that belongs to one of its fields (by name). */
export class FieldError extends Error {
  constructor(name, message) {
    super(message);
    this.field = name;
  }
}

/**
 * A small form in a dialog. `fields`: [{ name, label, hint, value, type, inputmode,
 * required, options: [[value, text]] (a select) }]. `onSubmit(values)` does the work while
 * the dialog stays open: what it throws is shown in the dialog (a FieldError next to its
 * field), and the person may correct and send again. Resolves what `onSubmit` returned, or
 * null when the dialog was closed without sending.
 */
export function formDialog({ title, text, fields, submit, onSubmit }) {
  const titleId = uid('dialog');
  const alerts = alertSlot();
  const controls = new Map();
  const rows = fields.map((f) => {
    const control = f.options
      ? h('select', { name: f.name }, f.options.map(([value, label]) => h('option', { value, selected: value === f.value }, label)))
      : h('input', {
        type: f.type || 'text', name: f.name, value: f.value ?? '', inputmode: f.inputmode || null,
        required: Boolean(f.required), autocomplete: 'off', spellcheck: 'false',
      });
    controls.set(f.name, control);
    return field(f.label, control, f.hint).wrap;
  });
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const send = h('button', { type: 'submit' }, submit);
  const form = h('form', { method: 'dialog', novalidate: true }, rows, alerts.el, h('div', { class: 'actions' }, cancel, send));
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, title), text ? h('p', {}, text) : null, form);
  return new Promise((resolve) => {
    let result = null;
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      alerts.clear();
      for (const control of controls.values()) control.removeAttribute('aria-invalid');
      const values = Object.fromEntries([...controls].map(([name, control]) => [name, control.value]));
      send.disabled = true;
      try {
        result = await onSubmit(values);
        dialog.close();
      } catch (e) {
        const control = e instanceof FieldError ? controls.get(e.field) : null;
        alerts.show(e);
        if (control) {
          control.setAttribute('aria-invalid', 'true');
          control.focus();
        }
      } finally {
        send.disabled = false;
      }
    });
    open(dialog, () => resolve(result));
  });
}

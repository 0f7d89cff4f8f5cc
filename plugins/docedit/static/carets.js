/**
 * Remote carets' name labels (y-codemirror.next draws them): a label shows for a moment when its person
 * moves or types, and while the pointer is on the caret; the rest of the time only the coloured caret is
 * drawn, so no name hides the text under it. A shown label goes below the caret when there is no room above
 * it (line 1, or the top of the scrolled view) and leftwards when there is no room on its right, so the
 * editor never clips it. The classes it sets on `.cm-ySelectionCaret` are styled in docedit.css.
 */

import { EditorView } from "./vendor/docedit.mjs";

/** How long a label stays after its person moved or typed. */
export const LABEL_MS = 1600;

const RECENT = "docedit-caret-recent";
const BELOW = "docedit-caret-below";
const LEFT = "docedit-caret-left";

/**
 * The caret elements of a view, in document order, each with a key (its person's name, the label's text,
 * numbered when one person has several carets: two tabs) and its document position.
 */
function carets(view) {
  const seen = new Map();
  return [...view.contentDOM.querySelectorAll(".cm-ySelectionCaret")].map((el) => {
    const name = el.querySelector(".cm-ySelectionInfo")?.textContent ?? "";
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return { el, key: `${name}#${n}`, pos: view.posAtDOM(el) };
  });
}

/** A CodeMirror extension; one per editor. */
export function caretLabels() {
  let positions = new Map(); // key -> where the caret was after the last update
  const until = new Map(); // key -> when its label hides
  let timer = null;

  function place(view) {
    if (!view.dom.isConnected) return;
    view.requestMeasure({
      read() {
        const scroller = view.scrollDOM.getBoundingClientRect();
        const top = scroller.top + view.scrollDOM.clientTop;
        const right = scroller.left + view.scrollDOM.clientLeft + view.scrollDOM.clientWidth;
        const now = Date.now();
        return carets(view).map(({ el, key }) => {
          const caret = el.getBoundingClientRect();
          const label = el.querySelector(".cm-ySelectionInfo");
          // above the caret, the label's top is 1.05em over the caret's (y-codemirror.next's theme)
          const rise = label ? 1.05 * parseFloat(getComputedStyle(label).fontSize) : 0;
          return {
            el,
            recent: (until.get(key) ?? 0) > now,
            below: caret.top - rise < top,
            left: caret.left + (label?.offsetWidth ?? 0) > right,
          };
        });
      },
      write(found) {
        for (const { el, recent, below, left } of found) {
          el.classList.toggle(RECENT, recent);
          el.classList.toggle(BELOW, below);
          el.classList.toggle(LEFT, left);
        }
      },
    });
  }

  function schedule(view) {
    clearTimeout(timer);
    const next = Math.min(...until.values());
    if (next === Infinity) return;
    timer = setTimeout(() => {
      const now = Date.now();
      for (const [key, time] of until) if (time <= now) until.delete(key);
      place(view);
      schedule(view);
    }, Math.max(0, next - Date.now()) + 20);
  }

  return [
    EditorView.updateListener.of((update) => {
      const now = Date.now();
      const next = new Map();
      for (const { key, pos } of carets(update.view)) {
        const before = positions.get(key);
        // moved, typed or newly here: where it was, carried through this update's edits, is not where it is
        if (before === undefined || update.changes.mapPos(before) !== pos) until.set(key, now + LABEL_MS);
        next.set(key, pos);
      }
      positions = next;
      place(update.view);
      schedule(update.view);
    }),
    EditorView.domEventHandlers({
      scroll(_event, view) {
        place(view); // the room above a caret changes as the text scrolls
      },
    }),
  ];
}

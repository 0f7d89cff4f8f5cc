/**
 * Per-user undo and redo (docs/draw.md §7): a stack of this user's own operations, each a list of
 * `{id, before, after, sent}` (`before`/`after`: a record or null for "not there"; `sent`: the record or
 * tombstone that was published). Undoing publishes new versions that take the
 * board from `after` back to `before`; only the fields this user's operation changed are put back, so an
 * edit someone else made to the same object since (a move, a colour) is not undone with it.
 */

import { compareStamps, isLive } from "./board.js";

const LIMIT = 100; // operations kept per stack
const STAMP = new Set(["id", "version", "nonce", "kind", "deleted", "ts"]);

function same(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
  return false;
}

/** Whether two records have the same content (stamps aside). */
export function sameBody(a, b) {
  if (!isLive(a) || !isLive(b)) return isLive(a) === isLive(b);
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) if (!STAMP.has(key) && !same(a[key], b[key])) return false;
  return true;
}

/**
 * What to publish so that an object that went from `from` to `to` by this user's hand goes back to `to`
 * from what it is now (`current`): `{delete: true}`, a body to put (stamp not set), or null (nothing to do).
 */
export function transition(current, from, to) {
  if (!isLive(to)) return isLive(current) ? { delete: true } : null;
  if (!isLive(from) || !isLive(current)) {
    // re-create it as it was (after a delete, a clear, or someone else's delete)
    return { body: { ...to } };
  }
  const body = { ...current };
  for (const key of Object.keys(to)) if (!STAMP.has(key) && !same(from[key], to[key])) body[key] = to[key];
  return sameBody(body, current) ? null : { body };
}

export class History {
  /** @type {{id: string, before: any, after: any}[][]} */
  undoStack = [];
  /** @type {{id: string, before: any, after: any}[][]} */
  redoStack = [];

  /** A new operation of this user's; it clears what could be redone. */
  push(changes) {
    const kept = changes.filter(({ before, after }) => !sameBody(before, after));
    if (!kept.length) return;
    this.undoStack.push(kept);
    if (this.undoStack.length > LIMIT) this.undoStack.shift();
    this.redoStack = [];
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  /** Take the last operation off the undo stack (onto the redo stack); returns its changes, reversed. */
  takeUndo() {
    const changes = this.undoStack.pop();
    if (!changes) return null;
    this.redoStack.push(changes);
    return changes.map(({ id, before, after }) => ({ id, from: after, to: before }));
  }

  /** Take the last undone operation back (onto the undo stack); returns its changes. */
  takeRedo() {
    const changes = this.redoStack.pop();
    if (!changes) return null;
    this.undoStack.push(changes);
    return changes.map(({ id, before, after }) => ({ id, from: before, to: after }));
  }

  /** Forget an operation whose edits the server refused (matched by the stamps it published). */
  discard(refused) {
    const match = (sent) => refused.some((r) => r.id === sent?.id && compareStamps(r, sent) === 0);
    this.undoStack = this.undoStack.filter((changes) => !changes.every(({ sent }) => match(sent)));
  }

  /** An object had to be re-created under a fresh id (its tombstone was pruned): follow it. */
  rename(oldId, newId) {
    for (const stack of [this.undoStack, this.redoStack]) {
      for (const changes of stack) for (const change of changes) if (change.id === oldId) change.id = newId;
    }
  }

  clear() {
    this.undoStack = [];
    this.redoStack = [];
  }
}

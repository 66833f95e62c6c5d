// queue.js: changes waiting for the lane, kept in IndexedDB so that a
// reload, a crash or a closed tab does not lose them. Each entry is one FD1
// request with its ik; it stays here until the lane has answered it, so a
// retry after a dropped link resends the same ik and the lane applies it
// once. Entries come back in the order they were added.

const dbVersion = 1;

export class Queue {
  // name: the IndexedDB database, one per screen.
  constructor(name) {
    this.name = name;
    this.db = null;
  }

  open() {
    if (this.db) return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(this.name, dbVersion);
      req.onupgradeneeded = () => {
        req.result.createObjectStore("changes", { keyPath: "id", autoIncrement: true });
      };
      req.onsuccess = () => {
        this.db = req.result;
        resolve(this);
      };
      req.onerror = () => reject(req.error);
    });
  }

  // add stores a change ({a, k, v, ik, label, sale}) and resolves with its id.
  add(change) {
    return this.tx("readwrite", (s) => s.add({ ...change, queued: Date.now() }));
  }

  // all resolves with every waiting change, oldest first.
  all() {
    return this.tx("readonly", (s) => s.getAll());
  }

  // replace removes the changes with ids and adds those of adds, in one
  // transaction: a page closed halfway neither loses them nor keeps both.
  replace(ids, adds) {
    return this.tx("readwrite", (s) => {
      for (const id of ids) s.delete(id);
      let last = null;
      for (const c of adds) last = s.add({ ...c, queued: Date.now() });
      return last || { result: undefined };
    });
  }

  remove(id) {
    return this.tx("readwrite", (s) => s.delete(id));
  }

  clear() {
    return this.tx("readwrite", (s) => s.clear());
  }

  tx(mode, f) {
    return this.open().then(
      () =>
        new Promise((resolve, reject) => {
          const t = this.db.transaction("changes", mode);
          const req = f(t.objectStore("changes"));
          // Resolve when the transaction is durable, not when the request
          // is queued: a change counts as kept only once it is on disk.
          t.oncomplete = () => resolve(req.result);
          t.onerror = () => reject(t.error);
          t.onabort = () => reject(t.error);
        })
    );
  }
}

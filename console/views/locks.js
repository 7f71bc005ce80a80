// A swarm's locks: holder, fencing token and the lease's countdown. Read again when the feed says
// a lock was taken or let go, and when a lease runs out (a lapsed lock leaves `locks` without a
// feed entry until the next lock operation on its name).
import { followContext } from "../lib/follow.js";
import { Countdown, ErrorNote, html, useEffect, useQuery } from "../lib/ui.js";

const LOCKS = `query($id: ID!) { context(id: $id) { locks { name holder token expiresAt } } }`;
/** After a lease's end, wait this long before reading again (clocks differ a little). */
const LAPSE_MS = 250;
/** Longest timer: a lease further out is looked at again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function Locks({ api, id, head }) {
  const locks = useQuery(api, LOCKS, { id }, [api, id]);
  useEffect(
    () => followContext(api, { id, seq: head.seq, kinds: ["LOCK_ACQUIRED", "LOCK_RELEASED"] }, { next: () => locks.reload(), error: () => {} }),
    [api, id],
  );
  const list = locks.data?.context?.locks ?? [];
  const nextEnd = Math.min(...list.map((l) => Date.parse(l.expiresAt)));
  useEffect(() => {
    if (!Number.isFinite(nextEnd)) return undefined;
    const timer = setTimeout(() => locks.reload(), Math.min(MAX_TIMER_MS, Math.max(0, nextEnd - Date.now()) + LAPSE_MS));
    return () => clearTimeout(timer);
  }, [nextEnd]);
  return html`<section aria-labelledby="locks-title">
    <h2 id="locks-title">Locks</h2>
    <${ErrorNote} error=${locks.error} />
    ${locks.data && list.length === 0 ? html`<p class="muted" data-testid="no-locks">No lock is held.</p>` : null}
    ${list.length > 0
      ? html`<div class="table-wrap"><table aria-label="Locks">
          <thead><tr><th scope="col">Name</th><th scope="col">Holder</th><th scope="col" class="num">Fencing token</th><th scope="col">Lease</th></tr></thead>
          <tbody>
            ${list.map(
              (l) => html`<tr key=${l.name} data-lock=${l.name}>
                <td><code>${l.name}</code></td><td>${l.holder}</td><td class="num">${l.token}</td><td><${Countdown} until=${l.expiresAt} /></td>
              </tr>`,
            )}
          </tbody>
        </table></div>`
      : null}
  </section>`;
}

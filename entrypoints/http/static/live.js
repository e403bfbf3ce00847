// The admin console's live feed: /ws/admin, reconnecting after 1, 2, 5, then every 10 seconds.
const LIVE_RETRY_MS = [1000, 2000, 5000, 10000];

/** Follow /ws/admin (the session cookie lets this page in), handing each change to
 * `onChange`; reconnect when the socket drops, saying so in `status`. */
export function follow(status, onChange, attempt = 0) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/admin`);
  socket.addEventListener("open", () => {
    attempt = 0;
    status.textContent = "Live updates: on";
    status.classList.remove("error");
  });
  socket.addEventListener("message", (event) => {
    let change = null;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    onChange(change);
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401 || event.code === 4403) {
      status.textContent = "Live updates: off (sign in again)";
      status.classList.add("error");
      return;
    }
    const wait = LIVE_RETRY_MS[Math.min(attempt, LIVE_RETRY_MS.length - 1)];
    status.textContent = `Live updates: reconnecting in ${wait / 1000} s`;
    status.classList.add("error");
    setTimeout(() => follow(status, onChange, attempt + 1), wait);
  });
}

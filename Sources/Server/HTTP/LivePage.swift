// The live drop page at `/`: static HTML, CSS and JavaScript in one response, nothing fetched
// from the network. Each drop's available stock is a bar that moves with `stock.changed`,
// purchases scroll in the feed, and a pasted token lets the visitor reserve, buy and cancel.
// Rendering is batched per animation frame, so a load test's event rate cannot freeze it.
// The page holds a token that can buy: it runs only its own script and style (a fresh CSP nonce
// per response), can be framed by nobody (so it cannot be clicked into buying), loads and
// sends nothing elsewhere, and keeps the token for the tab's life only.
import HTTPTypes
import Hummingbird
import NIOCore

enum LivePage {
    static func add(to router: Router<StockdropContext>) {
        router.get("/") { _, _ in
            let nonce = Self.nonce()
            return Response(
                status: .ok, headers: headers(nonce: nonce),
                body: .init(byteBuffer: ByteBuffer(string: page(nonce: nonce))))
        }
    }

    static func headers(nonce: String) -> HTTPFields {
        [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            .contentSecurityPolicy: "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'nonce-\(nonce)'; "
                + "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            .xContentTypeOptions: "nosniff", .xFrameOptions: "DENY", .referrerPolicy: "no-referrer",
        ]
    }

    /// 128 random bits, URL-safe: unguessable per response.
    static func nonce() -> String {
        (0..<2).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined(separator: "-")
    }

    static func page(nonce: String) -> String {
        html.replacingOccurrences(of: "<style>", with: #"<style nonce="\#(nonce)">"#)
            .replacingOccurrences(of: "<script>", with: #"<script nonce="\#(nonce)">"#)
    }

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>stockdrop live</title>
        <style>
          body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #0f1115; color: #e8e8ea; }
          header { padding: 14px 20px; background: #181b22; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
          header h1 { font-size: 18px; margin: 0 12px 0 0; }
          input { flex: 1; min-width: 240px; padding: 6px 8px; background: #0f1115; color: inherit; border: 1px solid #333; border-radius: 4px; }
          button { padding: 6px 12px; border: 0; border-radius: 4px; background: #3b82f6; color: white; cursor: pointer; }
          button.secondary { background: #374151; }
          #status { font-size: 13px; color: #9ca3af; }
          main { display: grid; grid-template-columns: 2fr 1fr; gap: 20px; padding: 20px; }
          .drop { background: #181b22; border-radius: 8px; padding: 14px; margin-bottom: 14px; }
          .drop h2 { font-size: 16px; margin: 0 0 6px; }
          .bar { height: 14px; background: #2a2f3a; border-radius: 7px; overflow: hidden; margin: 8px 0; }
          .bar > div { height: 100%; background: linear-gradient(90deg, #22c55e, #84cc16); transition: width .25s; }
          .figures { font-size: 13px; color: #9ca3af; }
          .actions { display: flex; gap: 8px; margin-top: 8px; align-items: center; }
          .outcome { font-size: 13px; color: #fbbf24; }
          #feed, #mine { list-style: none; padding: 0; margin: 0; font-size: 13px; }
          #feed li, #mine li { padding: 6px 0; border-bottom: 1px solid #222; }
          h3 { font-size: 14px; text-transform: uppercase; letter-spacing: .05em; color: #9ca3af; }
        </style>
        </head>
        <body>
        <header>
          <h1>stockdrop live</h1>
          <input id="token" placeholder="paste a bearer token (stockdrop token --user 42)" autocomplete="off">
          <button id="connect">Connect</button>
          <span id="status">not connected</span>
        </header>
        <main>
          <section id="drops"></section>
          <aside>
            <h3>Purchases</h3>
            <ul id="feed"></ul>
            <h3>Your holds</h3>
            <ul id="mine"></ul>
          </aside>
        </main>
        <script>
        "use strict";
        const drops = new Map();
        const dirty = new Set();
        let socket = null, frameQueued = false;
        const $ = (id) => document.getElementById(id);
        const token = () => $("token").value.trim();

        function upsert(drop) {
          drops.set(drop.id, Object.assign(drops.get(drop.id) || {}, drop));
          dirty.add(drop.id);
          schedule();
        }
        function schedule() {
          if (!frameQueued) { frameQueued = true; requestAnimationFrame(render); }
        }
        function render() {
          frameQueued = false;
          for (const id of dirty) {
            const d = drops.get(id);
            let card = document.getElementById("drop-" + id);
            if (!card) {
              card = document.createElement("div");
              card.className = "drop"; card.id = "drop-" + id;
              card.innerHTML = '<h2></h2><div class="bar"><div></div></div><div class="figures"></div>' +
                '<div class="actions"><button data-op="reserve">Reserve</button><button data-op="purchase">Buy</button>' +
                '<button class="secondary" data-op="cancel">Cancel</button><span class="outcome"></span></div>';
              card.querySelectorAll("button").forEach(b => b.onclick = () => act(id, b.dataset.op, card));
              $("drops").prepend(card);  // newest drop first
            }
            card.querySelector("h2").textContent = d.name + " — $" + (d.priceCents / 100).toFixed(2);
            const percent = d.totalStock ? 100 * d.availableStock / d.totalStock : 0;
            card.querySelector(".bar > div").style.width = percent + "%";
            card.querySelector(".figures").textContent =
              d.availableStock + " available · " + d.reservedStock + " held · " + d.soldCount + " sold of " + d.totalStock;
            card.dataset.available = d.availableStock;
          }
          dirty.clear();
        }
        function feed(list, text) {
          const item = document.createElement("li");
          item.textContent = text;
          list.prepend(item);
          while (list.children.length > 50) list.lastChild.remove();
        }
        async function act(id, op, card) {
          const outcome = card.querySelector(".outcome");
          if (!token()) { outcome.textContent = "paste a token first"; return; }
          const paths = { reserve: "\#(RoutePaths.reserve)", purchase: "\#(RoutePaths.purchase)", cancel: "\#(RoutePaths.cancel)" };
          const request = [op === "cancel" ? "DELETE" : "POST", paths[op].replace("{id}", id)];
          const headers = { "Authorization": "Bearer " + token() };
          if (op === "purchase") headers["Idempotency-Key"] = "page-" + id + "-" + Date.now();
          try {
            const response = await fetch(request[1], { method: request[0], headers });
            const body = await response.json();
            outcome.textContent = response.ok ? op + ": ok" : op + ": " + body.error.code;
          } catch (error) { outcome.textContent = op + ": " + error; }
        }
        function onEvent(event) {
          switch (event.type) {
            case "snapshot": for (const d of event.drops) upsert(d); break;
            case "drop.created": upsert(event.drop); break;
            case "stock.changed":
              upsert({ id: event.dropId, availableStock: event.availableStock, reservedStock: event.reservedStock,
                       soldCount: event.soldCount, totalStock: event.totalStock });
              break;
            case "purchase.completed": {
              const d = drops.get(event.dropId);
              feed($("feed"), (event.purchase.buyerName || "a buyer") + " bought " + (d ? d.name : "drop " + event.dropId));
              break;
            }
            case "reservation.expired": feed($("mine"), "your hold on drop " + event.dropId + " expired"); break;
            case "reservation.purchased": feed($("mine"), "you bought drop " + event.dropId); break;
          }
        }
        function connect() {
          if (socket) socket.close();
          // The tab's life only: a token that can buy must not outlive the visit.
          sessionStorage.setItem("stockdrop.token", token());
          const scheme = location.protocol === "https:" ? "wss://" : "ws://";
          const current = new WebSocket(scheme + location.host + "\#(RoutePaths.live)?token=" + encodeURIComponent(token()));
          socket = current;
          $("status").textContent = "connecting…";
          current.onopen = () => { $("status").textContent = "live"; };
          // A frame is one event, or an array of the events that were pending together.
          current.onmessage = (message) => {
            const data = JSON.parse(message.data);
            (Array.isArray(data) ? data : [data]).forEach(onEvent);
          };
          // A replaced socket's close must not mark the new one disconnected.
          current.onclose = () => { if (socket === current) { $("status").textContent = "disconnected"; socket = null; } };
        }
        $("connect").onclick = connect;
        $("token").value = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("stockdrop.token") || "";
        // Read once, then gone from the address bar, the history and any copied link.
        if (location.hash) history.replaceState(null, "", location.pathname + location.search);
        fetch("\#(RoutePaths.drops)?limit=100").then(r => r.json()).then(page => page.drops.forEach(upsert));
        if (token()) connect();
        </script>
        </body>
        </html>
        """#
}

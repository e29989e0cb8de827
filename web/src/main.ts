/**
 * The edgemesh dashboard: sign-in, the shell (navigation, connection state, who is signed in),
 * hash routing (#/devices/x, so any static host serves it), and the live connection feeding the
 * store that every view reads.
 */
import "uplot/dist/uPlot.min.css";
import "./app.css";
import { type Api, createApi } from "./api.ts";
import { problem, throttle } from "./components.ts";
import type { Ctx, View } from "./context.ts";
import { h, setText } from "./dom.ts";
import { ago } from "./format.ts";
import { type ConnectionState, isAuthFailure, LiveConnection } from "./live.ts";
import { roleAllows, Session } from "./session.ts";
import { Store } from "./store.ts";
import type { Device, Room } from "./types.ts";
import { alertRulesView } from "./views/alert-rules.ts";
import { alertsView } from "./views/alerts.ts";
import { automationsView } from "./views/automations.ts";
import { deadLettersView } from "./views/dead-letters.ts";
import { deviceView } from "./views/device.ts";
import { devicesView } from "./views/devices.ts";
import { energyView } from "./views/energy.ts";
import { homeView } from "./views/home.ts";
import { loginScreen } from "./views/login.ts";
import { addDeviceView } from "./views/manage-devices.ts";
import { pipelineView } from "./views/pipeline.ts";
import { roomsView, roomView } from "./views/rooms.ts";
import { usersView } from "./views/users.ts";

const ROUTES: { pattern: RegExp; view: View; nav: string }[] = [
  { pattern: /^\/home$/, view: homeView, nav: "home" },
  { pattern: /^\/(?:devices)?$/, view: devicesView, nav: "devices" },
  { pattern: /^\/devices\/(?<id>[^/]+)$/, view: deviceView, nav: "devices" },
  { pattern: /^\/add-device$/, view: addDeviceView, nav: "devices" },
  { pattern: /^\/rooms$/, view: roomsView, nav: "rooms" },
  { pattern: /^\/rooms\/(?<id>[^/]+)$/, view: roomView, nav: "rooms" },
  { pattern: /^\/dead-letters$/, view: deadLettersView, nav: "dead-letters" },
  { pattern: /^\/pipeline$/, view: pipelineView, nav: "pipeline" },
  { pattern: /^\/alerts$/, view: alertsView, nav: "alerts" },
  { pattern: /^\/alert-rules$/, view: alertRulesView, nav: "alerts" },
  { pattern: /^\/automations$/, view: automationsView, nav: "automations" },
  { pattern: /^\/people$/, view: usersView, nav: "people" },
  { pattern: /^\/energy$/, view: energyView, nav: "energy" },
];

const CONNECTION_LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline, retrying",
};

function parseHash(): { path: string; query: URLSearchParams } {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path = "/", search = ""] = raw.split("?", 2);
  return { path: path.startsWith("/") ? path : `/${path}`, query: new URLSearchParams(search) };
}

class App {
  readonly session = new Session();
  readonly api: Api = createApi(this.session);
  readonly store = new Store();
  readonly live: LiveConnection;
  #body = document.body;
  #main = h("main", { id: "main", tabindex: -1 });
  #connection = h("div", { class: "connection", role: "status", "aria-live": "polite", "data-state": "connecting" });
  #who = h("div", { class: "who" });
  #nav = h("nav", { class: "nav", "aria-label": "Main" });
  #leave: (() => void) | undefined;
  #routeKey = "";
  #connectionListeners = new Set<(state: ConnectionState) => void>();
  #inApp = false;
  #fleetTimer: ReturnType<typeof setInterval> | undefined;

  constructor() {
    const wsBase = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/live`;
    const reloadSoon = throttle(() => void this.reloadFleet().catch(() => {}), 2000);
    // A refused upgrade (401: a revoked token) looks like a network failure to a browser, so the
    // hubs ask over HTTP before retrying, which signs out on 401. One request for every hub at
    // once: failed authentications count against this address's limit (10 a minute).
    let probe: Promise<void> | undefined;
    const checkAuth = () => {
      probe ??= this.api
        .get("/v1/rooms")
        .then(
          () => {},
          (error: unknown) => {
            if (isAuthFailure(error)) throw error;
          },
        )
        .finally(() => {
          setTimeout(() => {
            probe = undefined;
          }, 1000);
        });
      return probe;
    };
    this.live = new LiveConnection({
      url: wsBase,
      accessToken: () => this.session.accessToken(),
      refreshToken: () => this.session.refresh(),
      unauthorized: (reason) => {
        if (this.session.identity) this.session.logout(`Signed out: ${reason}. Please sign in again.`);
      },
      checkAuth,
      events: {
        snapshot: (hub, snapshot) => this.store.applySnapshot(hub, snapshot),
        update: (_hub, update) => {
          if (update.device && update.stream !== "dead_letter" && update.stream !== "alert" && !this.store.devices.has(update.device))
            reloadSoon();
          this.store.applyUpdate(update);
        },
        state: (state) => this.#showConnection(state),
        error: (hub, error) => console.warn(`live hub ${hub}: ${error.code} ${error.message}`),
      },
    });
    this.session.onChange((identity, reason) => {
      if (!identity) this.#showLogin(reason);
    });
    window.addEventListener("hashchange", () => this.#route());
    window.addEventListener("online", () => this.live.reconnectNow());
    setInterval(() => {
      for (const el of document.querySelectorAll<HTMLElement>("[data-ago]")) {
        const at = el.dataset.ago;
        if (at) setText(el, ago(at));
      }
    }, 5000);
  }

  async start(): Promise<void> {
    if (this.session.identity) return this.#enter();
    if (!this.session.hasRefreshToken) return this.#showLogin();
    this.#body.replaceChildren(h("main", { id: "main", class: "boot" }, h("p", { class: "loading", role: "status" }, "Signing in…")));
    try {
      await this.session.refresh();
      await this.#enter();
    } catch (error) {
      if (isAuthFailure(error)) return; // the session listener shows the login screen
      this.#body.replaceChildren(
        h(
          "main",
          { id: "main", class: "boot" },
          problem(error, () => void this.start()),
        ),
      );
    }
  }

  #showLogin(reason?: string): void {
    this.#inApp = false;
    this.#leave?.();
    this.#leave = undefined;
    this.#routeKey = "";
    clearInterval(this.#fleetTimer);
    this.live.stop();
    this.#body.replaceChildren(loginScreen(this.session, reason, () => void this.#enter()));
    document.title = "Sign in · edgemesh";
  }

  async #enter(): Promise<void> {
    this.#inApp = true;
    this.#renderShell();
    this.#main.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading the fleet…"));
    try {
      await this.reloadFleet();
    } catch (error) {
      if (isAuthFailure(error)) return;
      this.#main.replaceChildren(problem(error, () => void this.#enter()));
      return;
    }
    clearInterval(this.#fleetTimer);
    this.#fleetTimer = setInterval(() => void this.reloadFleet().catch(() => {}), 60_000);
    this.#routeKey = "";
    this.#route();
  }

  /** The registry's devices and rooms; one hub socket per room, plus `unassigned` and `system`. */
  async reloadFleet(): Promise<void> {
    const [{ devices }, { rooms }] = await Promise.all([
      this.api.get<{ devices: Device[] }>("/v1/devices?limit=1000"),
      this.api.get<{ rooms: Room[] }>("/v1/rooms"),
    ]);
    this.store.setRooms(rooms);
    this.store.setDevices(devices);
    if (!this.#inApp) return;
    const hubs = new Set(rooms.map((r) => r.id));
    for (const d of devices) if (d.room) hubs.add(d.room);
    hubs.add("unassigned");
    hubs.add("system");
    this.live.setHubs(hubs);
  }

  #renderShell(): void {
    const identity = this.session.identity;
    setText(this.#who, "");
    this.#who.append(
      h("span", { class: "muted" }, identity ? `${identity.sub} · ${identity.role}` : ""),
      h("button", { type: "button", class: "link", onclick: () => this.session.logout("You signed out.") }, "Sign out"),
    );
    this.#nav.replaceChildren(
      h("a", { href: "#/home", "data-nav": "home" }, "Home"),
      h("a", { href: "#/devices", "data-nav": "devices" }, "Devices"),
      h("a", { href: "#/rooms", "data-nav": "rooms" }, "Rooms"),
      h("a", { href: "#/energy", "data-nav": "energy" }, "Energy"),
      h("a", { href: "#/alerts", "data-nav": "alerts" }, "Alerts"),
      h("a", { href: "#/automations", "data-nav": "automations" }, "Automations"),
      h("a", { href: "#/dead-letters", "data-nav": "dead-letters" }, "Dead letters"),
      ...(roleAllows(identity?.role, "admin")
        ? [h("a", { href: "#/pipeline", "data-nav": "pipeline" }, "Pipeline"), h("a", { href: "#/people", "data-nav": "people" }, "People")]
        : []),
    );
    this.#showConnection(this.live.state === "offline" ? "connecting" : this.live.state);
    this.#body.replaceChildren(
      h("header", { class: "top" }, h("a", { class: "brand", href: "#/" }, "edgemesh"), this.#nav, this.#connection, this.#who),
      this.#main,
    );
  }

  #showConnection(state: ConnectionState): void {
    this.#connection.setAttribute("data-state", state);
    document.documentElement.dataset.connection = state;
    this.#connection.replaceChildren(
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "label" }, CONNECTION_LABELS[state]),
    );
    for (const listener of this.#connectionListeners) listener(state);
  }

  #route(): void {
    if (!this.#inApp) return;
    const { path, query } = parseHash();
    if (path === this.#routeKey) return; // only the filters changed (setQuery)
    this.#leave?.();
    this.#leave = undefined;
    this.#routeKey = path;
    this.#main.replaceChildren();
    const route = ROUTES.find((r) => r.pattern.test(path));
    for (const link of this.#nav.querySelectorAll<HTMLElement>("[data-nav]")) {
      if (link.dataset.nav === route?.nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (!route) {
      this.#main.append(
        h("section", { class: "problem" }, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to the devices"))),
      );
      document.title = "Not found · edgemesh";
      return;
    }
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(route.pattern.exec(path)?.groups ?? {})) params[key] = decodeURIComponent(value);
    document.title = `${params.id ? `${params.id} · ` : ""}${route.nav.replace("-", " ")} · edgemesh`;
    this.#leave = route.view(this.#main, this.#ctx(), params, query) ?? undefined;
    window.scrollTo(0, 0);
  }

  #ctx(): Ctx {
    return {
      api: this.api,
      session: this.session,
      store: this.store,
      live: this.live,
      can: (role) => roleAllows(this.session.identity?.role, role),
      setQuery: (query) => {
        const { path } = parseHash();
        const search = query.toString();
        history.replaceState(null, "", `#${path}${search ? `?${search}` : ""}`);
      },
      onConnection: (listener) => {
        this.#connectionListeners.add(listener);
        return () => this.#connectionListeners.delete(listener);
      },
      reloadFleet: () => this.reloadFleet(),
      rerender: () => {
        this.#routeKey = "";
        this.#route();
      },
    };
  }
}

void new App().start();

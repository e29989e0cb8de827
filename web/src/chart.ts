/**
 * A live time-series chart (uPlot): loads a metric's history, then appends live points, keeping
 * the last `windowMs`. Redraws at most once per animation frame and follows its box's width.
 */
import uPlot from "uplot";
import type { Point } from "./history.ts";

export interface ChartOptions {
  title: string;
  unit?: string | null | undefined;
  /** Booleans (motion) draw as steps between 0 and 1. */
  stepped?: boolean;
  windowMs?: number;
  height?: number;
}

export class LiveChart {
  #plot: uPlot;
  #xs: number[] = [];
  #ys: number[] = [];
  #windowMs: number;
  #frame = 0;
  #resize: ResizeObserver | undefined;
  readonly element: HTMLElement;

  constructor(container: HTMLElement, options: ChartOptions) {
    this.element = container;
    this.#windowMs = options.windowMs ?? 60 * 60_000;
    const stroke = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#2563eb";
    const axis = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#64748b";
    const grid = { stroke: "rgba(127,127,127,0.15)", width: 1 };
    this.#plot = new uPlot(
      {
        width: Math.max(240, container.clientWidth || 320),
        height: options.height ?? 180,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: {
            time: true,
            // At least the last ten minutes, at most the window: a lone point is not a year-wide axis.
            // (From the data itself: uPlot pads a single point's min and max far apart.)
            range: () => {
              const now = Date.now() / 1000;
              const first = this.#xs[0] ?? now;
              const hi = Math.max(now, this.#xs[this.#xs.length - 1] ?? now);
              return [Math.max(Math.min(first, hi - 600), hi - this.#windowMs / 1000), hi];
            },
          },
          ...(options.stepped ? { y: { range: [-0.1, 1.1] as uPlot.Range.MinMax } } : {}),
        },
        axes: [
          { stroke: axis, grid, ticks: grid },
          {
            stroke: axis,
            grid,
            ticks: grid,
            size: 56,
            ...(options.stepped ? { splits: () => [0, 1] } : {}),
            values: (_u, splits) => splits.map((v) => (options.stepped ? (v ? "yes" : "no") : fmt(v))),
          },
        ],
        series: [
          {},
          {
            label: options.title,
            stroke,
            width: 2,
            fill: `${stroke}22`,
            // Points only while there are few of them (a lone reading is otherwise invisible).
            points: { show: (u: uPlot) => (u.data[0]?.length ?? 0) < 3, size: 6 },
            ...(options.stepped ? { paths: uPlot.paths.stepped?.({ align: 1 }) } : {}),
          },
        ],
      },
      [[], []],
      container,
    );
    if (typeof ResizeObserver !== "undefined") {
      this.#resize = new ResizeObserver(() => {
        const width = Math.max(240, container.clientWidth);
        if (Math.abs(width - this.#plot.width) > 2) this.#plot.setSize({ width, height: this.#plot.height });
      });
      this.#resize.observe(container);
    }
  }

  get points(): number {
    return this.#xs.length;
  }

  setHistory(points: Point[]): void {
    // Live points may have arrived while the history loaded: merge by time.
    const live = this.#xs.map((x, i) => ({ t: x * 1000, v: this.#ys[i] as number }));
    const merged = [...points, ...live].sort((a, b) => a.t - b.t);
    this.#xs = [];
    this.#ys = [];
    for (const p of merged) {
      if (this.#xs.length && this.#xs[this.#xs.length - 1] === p.t / 1000) continue;
      this.#xs.push(p.t / 1000);
      this.#ys.push(p.v);
    }
    this.#redraw();
  }

  /** A new range: the window changes and the history replaces every point. */
  replace(points: Point[], windowMs: number): void {
    this.#windowMs = windowMs;
    this.#xs = [];
    this.#ys = [];
    this.setHistory(points);
  }

  /** What the chart shows, oldest first (milliseconds, value): the CSV download. */
  rows(): { t: number; v: number }[] {
    return this.#xs.map((x, i) => ({ t: x * 1000, v: this.#ys[i] as number }));
  }

  append(t: number, v: number): void {
    const x = t / 1000;
    const last = this.#xs[this.#xs.length - 1];
    if (last !== undefined && x < last) {
      this.setHistory([{ t, v, unit: null }]);
      return;
    }
    if (last === x) this.#ys[this.#ys.length - 1] = v;
    else {
      this.#xs.push(x);
      this.#ys.push(v);
    }
    const oldest = (Date.now() - this.#windowMs) / 1000;
    let drop = 0;
    while (drop < this.#xs.length - 1 && (this.#xs[drop] as number) < oldest) drop++;
    if (drop) {
      this.#xs.splice(0, drop);
      this.#ys.splice(0, drop);
    }
    this.#redraw();
  }

  #redraw(): void {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#plot.setData([this.#xs, this.#ys]);
    });
  }

  destroy(): void {
    cancelAnimationFrame(this.#frame);
    this.#resize?.disconnect();
    this.#plot.destroy();
  }
}

function fmt(v: number): string {
  const abs = Math.abs(v);
  return v.toLocaleString(undefined, { maximumFractionDigits: abs >= 100 ? 0 : abs >= 10 ? 1 : 2 });
}

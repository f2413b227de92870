"""Audit reports for people and programs: text tables, the JSON document, one HTML page.

Everything here reads the typed report only (`ledger.investigate.audit_model`), never the
store or the chain, so a report read back with `AuditReport.from_json` renders as well as
one just made. Text and HTML are drawn from the same tables (`_Cell` rows), so they cannot
disagree; report values are shown as literal text everywhere, never parsed as console
markup or HTML.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger._internal import jsondoc
from ledger.investigate.audit_model import (
    FAILED,
    NOT_APPLICABLE,
    UNANCHORED,
    VERIFIED,
    AuditReport,
    CoverageItem,
    EventEntry,
    Figures,
    FigureSources,
    MerchantReport,
    OrderReport,
    RecordEntry,
    claim_text,
    token_label,
)

__all__ = ["render_html", "render_json", "render_text", "text_report"]


# --------------------------------------------------------------------------- rendering: JSON


def render_json(report: AuditReport) -> str:
    """The report document (`AuditReport.to_json`)."""
    return report.to_json()


# --------------------------------------------------------------------------- rendering: tables


@dataclass(frozen=True)
class _Cell:
    """One table cell, for both back ends: its text, how it is shown, reasons under it."""

    text: str
    style: str = ""  # "mono" (a hash or address), "status", "bad" (a failure), "reason"
    notes: tuple[str, ...] = ()


def _c(value: Any, style: str = "", notes: Iterable[str] = ()) -> _Cell:
    return _Cell("-" if value is None else str(value), style, tuple(notes))


#: (title, column headers, rows)
_Table = tuple[str, Sequence[str], list[list[_Cell]]]


def _short(h: str | None, n: int = 10) -> str:
    if not h:
        return "-"
    return h if len(h) <= 2 * n + 1 else f"{h[:n]}…{h[-4:]}"


def _money(by_token: dict[str, int]) -> str:
    if not by_token:
        return "0"
    return "; ".join(f"{v:,} {token_label(t)}" for t, v in by_token.items())


def _coverage(item: CoverageItem) -> str:
    return f"{item.coverage:.2f}×" if item.coverage is not None else "nothing locked"


def _figure_lines(f: Figures) -> list[tuple[str, str, FigureSources]]:
    """One line per figure, for the summary tables: its title, its value, its sources."""
    rate, d, r = f.return_rate, f.disputes, f.refunds
    pledged = f.pledged_receivables
    return [
        ("orders", f"{f.orders.count} ({f.orders.escrowed} escrowed)", f.orders.sources),
        ("settled sales (payout)",
         _money({tok: v.payout for tok, v in f.settled_sales.by_token.items()}),
         f.settled_sales.sources),
        ("refunds", (f"{r.count} ({r.full.count} full, {r.partial.count} partial): "
                     f"{_money(r.by_token)}"), r.sources),
        ("return rate", ((f"{rate.rate:.2%}" if rate.rate is not None else "n/a")
                         + f" ({rate.returns} returns / {rate.delivered} delivered)"),
         rate.sources),
        ("disputes", (f"{d.opened} opened, {d.lost} lost, {d.won} won, {d.even} even, "
                      f"{d.open} open"), d.sources),
        ("deposit coverage", "; ".join(
            f"{token_label(i.token)}: {_coverage(i)}" for i in f.deposit_coverage.items
        ) or "-", f.deposit_coverage.sources),
        ("pledged receivables", f"{pledged.count} order(s)" + "".join(
            f"; {v.outstanding:,} outstanding, {v.paid_to_lenders:,} paid to lenders "
            f"({token_label(t)})" for t, v in pledged.by_token.items()), pledged.sources),
    ]  # fmt: skip


def _figure_tables(report: MerchantReport) -> list[_Table]:
    """A merchant report's tables: figures with their sources, then the details."""
    f = report.figures
    figures = [[
        _c(title), _c(value),
        _c(", ".join(f"{r.index} {r.id}" for r in s.records) or "-", "mono"),
        _c("\n".join(e.tx_hash for e in s.events) or "-", "mono"),
        _c(s.status, "status"), _c("; ".join(s.reasons), "reason"),
    ] for title, value, s in _figure_lines(f)]  # fmt: skip
    r = f.refunds
    return [
        ("Figures", ("figure", "value", "leaves (index, record id)", "transactions", "status",
                     "problems"), figures),
        ("Settled sales by token", ("token", "orders", "gross", "fee", "reserve", "payout"),
         [[_c(token_label(tok), "mono"),
           *(_c(f"{n:,}") for n in (v.orders, v.gross, v.fee, v.reserve, v.payout))]
          for tok, v in f.settled_sales.by_token.items()]),
        ("Refunds", ("", "count", "amount"), [
            [_c("full"), _c(r.full.count), _c(_money(r.full.by_token))],
            [_c("partial"), _c(r.partial.count), _c(_money(r.partial.by_token))],
            [_c("fraud compensation"), _c(""), _c(_money(r.compensation_by_token))],
        ]),
        ("Disputes", ("order", "opener", "ruling", "how", "buyer share", "outcome", "opened in",
                      "resolved in"),
         [[_c(i.order_id), _c(i.opener), _c(i.ruling), _c(i.how),
           _c("-" if i.buyer_bps is None else f"{i.buyer_bps / 100:.2f}%"),
           _c(i.outcome, "bad" if i.outcome == "lost" else ""),
           _c(i.opened_tx, "mono"), _c(i.resolved_tx, "mono")]
          for i in f.disputes.items]),
        ("Deposit coverage (now, from the chain)",
         ("merchant address", "token", "deposit", "locked by open orders", "coverage"),
         [[_c(i.merchant, "mono"), _c(token_label(i.token), "mono"),
           _c(f"{i.deposit:,}"), _c(f"{i.locked:,}"),
           _c(_coverage(i), "" if i.covered else "bad")]
          for i in f.deposit_coverage.items]),
        ("Pledged receivables", ("order", "lender", "state", "token", "price", "outstanding",
                                 "paid to lender", "pledge tx", "can still reduce the payout"),
         [[_c(i.order_id), _c(i.lender, "mono"), _c(i.state),
           _c(token_label(i.token), "mono"), _c(f"{i.price:,}"),
           _c(f"{i.outstanding:,}"), _c(f"{i.paid_to_lender:,}"), _c(i.pledge_tx, "mono"),
           _c("\n".join(claim_text(k) for k in i.payout_claims) or "nothing: settled")]
          for i in f.pledged_receivables.items]),
        ("Orders", ("order", "opened", "order leaf", "state", "token", "price", "checks"),
         [[_c(o.order_id), _c(o.ts), _c(o.index), _c(o.state),
           _c(token_label(o.token) if o.token else None, "mono"),
           _c(None if o.price is None else f"{o.price:,}"), _c(o.status, "status")]
          for o in report.orders]),
    ]


def _entry_refs(e: RecordEntry | EventEntry, short: bool) -> tuple[str, str]:
    """(record id or transaction, leaf) columns of a timeline entry."""
    if isinstance(e, RecordEntry):
        return e.id, f"{e.index} {e.leaf[:12] + '…' if short else e.leaf}"
    tx = _short(e.tx_hash) if short else e.tx_hash
    ref = f"{e.order_id or ''} {tx} log {e.log_index}".strip()
    er = e.evidence_record
    if er:
        return ref, f"cites {er.index} {er.id}"
    return ref, ("cites " + (e.evidence[:12] + "…" if short else e.evidence)
                 if e.evidence else "-")


def _entries_table(report: AuditReport, title: str, short: bool) -> _Table:
    """Every timeline entry (hashes shortened if `short`), its reasons under its summary."""
    rows = []
    for e in report.timeline:
        ref, leaf = _entry_refs(e, short)
        kind = "record" if isinstance(e, RecordEntry) else "event"
        rows.append([_c(e.n), _c(e.ts), _c(kind), _c(e.kind), _c(ref, "mono"),
                     _c(leaf, "mono"), _c(e.status, "status"),
                     _c(e.summary, notes=e.reasons)])
    return (title, ("#", "time (UTC)", "entry", "kind", "record / transaction", "leaf", "status",
                    "detail"), rows)


def _header_lines(report: OrderReport | MerchantReport) -> tuple[str, list[str]]:
    c, a = report.chain, report.anchor
    if isinstance(report, OrderReport):
        o = report.order
        title = f"Audit of order {o.order_id}"
        token = token_label(o.token) if o.token else "-"
        lines = [f"state {o.state}; merchant {o.merchant_id} ({o.merchant}); "
                 f"buyer {o.buyer}",
                 f"price {o.price} {token}; pledged to {o.lender or 'nobody'}"]
        lines += [f"can still reduce the payout: {claim_text(k)}" for k in o.payout_claims]
        for s in report.steps:
            held = f"; its record(s) {', '.join(s.record_ids)} are held out of the log" * bool(s.record_ids)
            where = ("not taken on chain" if s.mined_in_block is None else
                     f"mined in block {s.mined_in_block} but not yet settled in the store (`ledger resume` "
                     "settles it)")
            lines.append(f"step {s.action} {where}: {s.status} (tx {s.tx_hash}){held}"
                         + (f": {s.error}" if s.error else ""))
    else:
        m = report.merchant
        title = f"Audit of merchant {m.merchant_id}"
        lines = [f"orders opened in [{m.since or '-∞'}, {m.until or '+∞'})",
                 f"chain addresses: {', '.join(m.addresses) or 'none (no escrowed orders)'}"]
    lines.append(f"chain {c.chain_id} at block {c.block_number} ({c.block_time}); "
                 f"escrow {c.escrow}; evidence log {c.evidence_log}")
    lines.append(f"anchored head size {a.tree_size}, root {a.root}, tx {a.tx_hash} "
                 f"(block {a.block_number})" if a else "nothing anchored on this log")
    return title, lines


def _verdict(report: AuditReport) -> str:
    head = ("all checks passed" if report.ok
            else f"{len(report.flags)} problem(s) flagged")
    if report.ok and report.counts.unanchored:
        head += (f", but {report.counts.unanchored} entries are not yet anchored, so not verified: "
                 "anchor the log (`ledger anchor`) and audit again")
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items())
    return f"{head}: {len(report.timeline)} entries ({counts})"


# --------------------------------------------------------------------------- rendering: text

_STATUS_STYLE = {VERIFIED: "green", UNANCHORED: "yellow", FAILED: "bold red", NOT_APPLICABLE: "dim"}


def render_text(report: OrderReport | MerchantReport) -> Any:
    """The report as rich renderables (tables); report values are never parsed as markup."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def text(cell: _Cell) -> Text:
        style = (_STATUS_STYLE.get(cell.text, "") if cell.style == "status"
                 else "red" if cell.style in ("bad", "reason") else "")
        out = Text(cell.text, style=style)
        for note in cell.notes:
            out.append(f"\n! {note}", style="red")
        return out

    def table(title: str, headers: Sequence[str], rows: list[list[_Cell]]) -> Table:
        tab = Table(title=title, title_justify="left", title_style="bold")
        for h in headers:
            tab.add_column(h, overflow="fold")
        for row in rows:
            tab.add_row(*(text(c) for c in row))
        return tab

    title, lines = _header_lines(report)
    parts: list[Any] = [Text(title, style="bold"), *(Text(x, style="dim") for x in lines)]
    if isinstance(report, MerchantReport):
        parts += [table(*t) for t in _figure_tables(report)]
    parts.append(table(*_entries_table(report, "Timeline", short=True)))
    parts.append(Text(_verdict(report), style="bold green" if report.ok else "bold red"))
    for flag in report.flags:
        parts.append(Text.assemble(("FLAG ", "bold red"), f"{flag.subject}: {flag.reason}"))
    return Group(*parts)


def text_report(report: OrderReport | MerchantReport, width: int = 160) -> str:
    """The text rendering as a plain string (no colour)."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False)
    console.print(render_text(report))
    return buf.getvalue()


# --------------------------------------------------------------------------- rendering: HTML

_CSS = """
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --ok: #067647; --warn: #b54708;
        --bad: #d40000; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: #fff; margin: 0; padding: 16px 24px 48px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: var(--muted); margin: 2px 0; word-break: break-all; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600;
           margin: 8px 0; }
.verdict.ok { background: #ecfdf3; color: var(--ok); }
.verdict.bad { background: #fef3f2; color: var(--bad); }
#timeline-chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px;
                  min-height: 120px; }
#timeline-chart svg { display: block; }
#legend { margin: 6px 0 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap;
          gap: 4px 14px; color: var(--muted); font-size: 12px; }
#legend .sw { display: inline-block; width: 10px; height: 10px; margin-right: 4px;
              border-radius: 2px; vertical-align: -1px; border: 1px solid #667085; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px;
          word-break: break-all; }
.st-verified { color: var(--ok); }
.st-unanchored { color: var(--warn); }
.st-failed { color: var(--bad); font-weight: 600; }
.st-na { color: var(--muted); }
.reason { color: var(--bad); }
ul.flags li { color: var(--bad); }
"""

# Builds the timeline chart from the report embedded as JSON. Report text reaches the DOM
# only through textContent and setAttribute, never as markup.
_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("audit-data").textContent);
  var entries = data.timeline || [];
  var host = document.getElementById("timeline-chart");
  var PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#bcbd22", "#ff7f0e",
                 "#8c564b", "#7f7f7f", "#3366cc", "#0b8043", "#6a3d9a", "#00838f",
                 "#b8860b", "#5d4037", "#1565c0", "#558b2f", "#4527a0", "#00695c"];
  var FAIL = "#d40000";
  var RECORD_KINDS = ["order", "payment", "shipment", "delivery", "review", "return"];
  function el(name, attrs) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }
  var lanes = [], laneOf = {};
  function addLane(type, kind) {
    var key = type + ":" + kind;
    if (!(key in laneOf)) { laneOf[key] = lanes.length; lanes.push({type: type, kind: kind}); }
  }
  RECORD_KINDS.forEach(function (k) {
    var used = entries.some(function (e) { return e.type === "record" && e.kind === k; });
    if (used) addLane("record", k);
  });
  entries.forEach(function (e) { addLane(e.type, e.kind); });
  var colour = {};
  lanes.forEach(function (l, i) { colour[l.type + ":" + l.kind] = PALETTE[i % PALETTE.length]; });

  var W = Math.max(640, Math.floor(host.clientWidth - 18) || 1100);
  var left = 170, right = 24, top = 16, laneH = 26, axisH = 40;
  var H = top + Math.max(lanes.length, 1) * laneH + axisH;
  var times = entries.map(function (e) { return e.time; });
  var t0 = times.length ? Math.min.apply(null, times) : 0;
  var t1 = times.length ? Math.max.apply(null, times) : 1;
  if (t1 - t0 < 60) { t0 -= 30; t1 += 30; }
  var pad = (t1 - t0) * 0.03;
  t0 -= pad; t1 += pad;
  function x(t) { return left + (t - t0) / (t1 - t0) * (W - left - right); }

  var svg = el("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, id: "timeline-svg",
                       role: "img", "aria-label": "timeline of records and escrow events"});
  svg.appendChild(el("rect", {x: 0, y: 0, width: W, height: H, fill: "#ffffff"}));
  lanes.forEach(function (l, i) {
    var y = top + i * laneH;
    if (i % 2 === 0) {
      svg.appendChild(el("rect", {x: left, y: y, width: W - left - right, height: laneH,
                                  fill: "#f6f7f9"}));
    }
    var label = el("text", {x: left - 8, y: y + laneH / 2 + 4, "text-anchor": "end",
                            "font-size": 11, fill: "#475467", "font-family": "sans-serif"});
    label.textContent = (l.type === "record" ? "record: " : "") + l.kind;
    svg.appendChild(label);
  });
  var axisY = top + Math.max(lanes.length, 1) * laneH + 4;
  svg.appendChild(el("line", {x1: left, x2: W - right, y1: axisY, y2: axisY, stroke: "#98a2b3"}));
  for (var k = 0; k <= 5; k++) {
    var tt = t0 + (t1 - t0) * k / 5, xx = x(tt);
    svg.appendChild(el("line", {x1: xx, x2: xx, y1: axisY, y2: axisY + 5, stroke: "#98a2b3"}));
    var iso = new Date(tt * 1000).toISOString();
    var anchor = k === 0 ? "start" : (k === 5 ? "end" : "middle");
    var lab = el("text", {x: xx, y: axisY + 18, "text-anchor": anchor, "font-size": 10,
                          fill: "#475467", "font-family": "sans-serif"});
    lab.textContent = iso.slice(0, 10) + " " + iso.slice(11, 19);
    svg.appendChild(lab);
  }
  var stack = {}, count = 0;
  entries.forEach(function (e) {
    var key = e.type + ":" + e.kind, lane = laneOf[key], cx = x(e.time);
    var slot = lane + ":" + Math.round(cx / 6);
    var n = stack[slot] = (stack[slot] || 0) + 1;
    var dy = n === 1 ? 0 : (n % 2 === 0 ? -1 : 1) * Math.min(9, 3 * Math.floor(n / 2));
    var cy = top + lane * laneH + laneH / 2 + dy;
    var failed = e.status === "failed", unanchored = e.status === "unanchored";
    var m = e.type === "record"
      ? el("circle", {cx: cx.toFixed(1), cy: cy.toFixed(1), r: failed ? 7 : 6})
      : el("rect", {x: (cx - 6).toFixed(1), y: (cy - 6).toFixed(1), width: 12, height: 12, rx: 2});
    m.setAttribute("fill", failed ? FAIL : (unanchored ? "#ffffff" : colour[key]));
    m.setAttribute("stroke", failed ? "#7a0000" : colour[key]);
    m.setAttribute("stroke-width", unanchored ? 2 : 1);
    if (unanchored) m.setAttribute("stroke-dasharray", "3 2");
    m.setAttribute("class", "marker marker-" + e.type + " status-" + e.status.replace("/", ""));
    m.setAttribute("data-n", String(e.n));
    m.setAttribute("data-kind", e.kind);
    var lines = [e.ts + "  " + e.type + " " + e.kind + "  [" + e.status + "]"];
    if (e.type === "record") {
      lines.push(e.id + " (leaf " + e.index + ")");
    } else {
      lines.push("tx " + e.tx_hash + " log " + e.log_index +
                 (e.order_id ? ", order " + e.order_id : ""));
    }
    if (e.evidence_record) {
      lines.push("cites " + e.evidence_record.id + " (leaf " + e.evidence_record.index + ")");
    }
    if (e.summary) lines.push(e.summary);
    (e.reasons || []).forEach(function (r) { lines.push("! " + r); });
    var title = el("title", {});
    title.textContent = lines.join("\n");
    m.appendChild(title);
    svg.appendChild(m);
    count++;
  });
  host.textContent = "";
  host.appendChild(svg);
  svg.setAttribute("data-markers", String(count));
  var legend = document.getElementById("legend");
  function legendItem(text, fill) {
    var li = document.createElement("li"), sw = document.createElement("span");
    sw.className = "sw";
    sw.style.background = fill;
    li.appendChild(sw);
    li.appendChild(document.createTextNode(text));
    legend.appendChild(li);
  }
  lanes.forEach(function (l) {
    var name = (l.type === "record" ? "record " : "event ") + l.kind;
    legendItem(name, colour[l.type + ":" + l.kind]);
  });
  legendItem("failed check", FAIL);
  legendItem("not yet anchored (outline)", "#ffffff");
  var r = svg.getBoundingClientRect();
  svg.setAttribute("data-bbox", [Math.round(r.left + window.scrollX),
                                 Math.round(r.top + window.scrollY),
                                 Math.round(r.width), Math.round(r.height)].join(","));
})();
"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'")


def _e(v: Any) -> str:
    return html.escape("-" if v is None else str(v), quote=True)


def _script_json(report: AuditReport) -> str:
    """The report as compact JSON that can neither end its <script> element nor open a
    comment inside it."""
    text = json.dumps(jsondoc.to_json(report), ensure_ascii=False, sort_keys=True)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _html_cell(c: _Cell) -> str:
    if c.style == "status":
        cls = "st-na" if c.text == NOT_APPLICABLE else f"st-{c.text}"
    else:
        cls = {"mono": "mono", "bad": "st-failed", "reason": "reason"}.get(c.style, "")
    attr = f' class="{cls}"' if cls else ""
    notes = "".join(f'<div class="reason">{_e(n)}</div>' for n in c.notes)
    return f"<td{attr}>{_e(c.text)}{notes}</td>"


def _html_table(title: str, headers: Sequence[str], rows: list[list[_Cell]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(_html_cell(c) for c in r)}</tr>" for r in rows)
    return (f"<h2>{_e(title)}</h2>\n"
            f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")


def render_html(report: OrderReport | MerchantReport) -> str:
    """A self-contained HTML page: inline CSS and JS, the report embedded as JSON, no
    external resources (its Content-Security-Policy forbids any). Every value is escaped."""
    title, lines = _header_lines(report)
    lines.append(f"generated {report.generated_at}")
    flags = "".join(f"<li><b>{_e(f.subject)}</b>: {_e(f.reason)}</li>" for f in report.flags)
    tables = _figure_tables(report) if isinstance(report, MerchantReport) else []
    body = [
        f"<h1>{_e(title)}</h1>",
        *(f'<p class="meta">{_e(x)}</p>' for x in lines),
        f'<div class="verdict {"ok" if report.ok else "bad"}">{_e(_verdict(report))}</div>',
        "<h2>Timeline</h2>",
        '<div id="timeline-chart"><noscript>The chart needs JavaScript; the table of entries '
        "below lists every one.</noscript></div>",
        '<ul id="legend"></ul>',
        *(_html_table(*t) for t in tables),
        "<h2>Problems</h2>" + (f'<ul class="flags">{flags}</ul>' if flags else "<p>none</p>"),
        _html_table(*_entries_table(report, "Entries", short=False)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="audit-data">{_script_json(report)}</script>'
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )

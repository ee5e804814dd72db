package report

// css is the report's whole style: light and dark colour schemes
// (prefers-color-scheme) and a print layout. Only generic font families.
const css = `
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1c2128;--muted:#5a6472;--grid:#e6e9ed;--axis:#8b95a1;--panel:#f5f7f9;--line:#d8dde3;
--accent:#2458c6;--front:#c9304a;--est:#9a5b00;--bad:#b42318;--flag-bg:#fff3dc;--est-bg:#fbf6ec;
--c0:#4269d0;--c1:#e69a00;--c2:#e5574a;--c3:#3ba99c;--c4:#3c9a44;--c5:#d9669a;--c6:#8e5bd8;--c7:#6f9be8;--c8:#9c6b4e;--c9:#7f858d;
--ph-load:rgba(120,130,145,.14);--ph-warmup:rgba(230,154,0,.14);--ph-measure:rgba(36,88,198,.10)}
@media (prefers-color-scheme:dark){:root{--bg:#12161b;--fg:#e4e8ed;--muted:#9aa5b2;--grid:#262c34;--axis:#6c7683;--panel:#1a1f26;--line:#2e353e;
--accent:#6ea0ff;--front:#ff6b81;--est:#f0b35a;--bad:#ff7b6b;--flag-bg:#3a2e17;--est-bg:#2a2519;
--c0:#6f95ff;--c1:#ffb733;--c2:#ff7a6b;--c3:#4fd1c0;--c4:#62c46a;--c5:#ff8fc0;--c6:#b58cff;--c7:#9cc0ff;--c8:#d29a76;--c9:#a9b0b8;
--ph-load:rgba(160,170,185,.12);--ph-warmup:rgba(255,183,51,.12);--ph-measure:rgba(110,160,255,.12)}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;font-variant-numeric:tabular-nums}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 24px}
header{padding-top:28px}
h1{font-size:26px;margin:0 0 6px;letter-spacing:-.01em}
h2{font-size:18px;margin:34px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
.sub{margin:2px 0;color:var(--muted)}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:12px;margin:22px 0 8px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:22px;font-weight:600;margin:4px 0 2px}
.card .s{color:var(--muted);font-size:12.5px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.callout{border-left:4px solid var(--est);background:var(--est-bg);padding:8px 12px;border-radius:4px}
figure{margin:0 0 26px;background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 14px 10px}
figure svg{display:block;width:100%;height:auto;max-width:100%}
figcaption{color:var(--muted);font-size:12.5px;margin-top:6px}
svg text{fill:var(--fg);font-size:12px}
svg .tick,svg .note,svg .value{fill:var(--muted);font-size:11px}
svg .label{fill:var(--muted);font-size:12px}
svg .ylabel{font-size:12px}
svg .grid{stroke:var(--grid);stroke-width:1}
svg .axis{stroke:var(--axis);stroke-width:1}
svg .bar{stroke:none}
svg .stem{stroke-width:2;opacity:.45}
svg .bar.est{fill-opacity:.35;stroke:var(--est);stroke-width:1;stroke-dasharray:3 2}
svg .ci{stroke:var(--fg);stroke-width:1.2;fill:none;opacity:.7}
svg .ci.faint{opacity:.28}
svg .dot{fill:var(--bg);stroke:var(--fg);stroke-width:1}
svg .pt{fill:var(--bg);stroke:var(--muted);stroke-width:1.5}
svg .pt.front{fill:var(--front);stroke:var(--bg);stroke-width:1.5}
svg .pt.est{stroke-dasharray:2 1.5}
svg .front-line{fill:none;stroke:var(--front);stroke-width:2;stroke-dasharray:6 4}
svg .dominated{fill:var(--front);opacity:.06;stroke:none}
svg .ptlabel{font-size:11.5px;font-weight:600}
svg .ptlabel.dom{font-weight:400;opacity:.7}
svg .ci-arrow{fill:var(--fg);opacity:.45}
svg .trace{fill:none;stroke-width:1.6;stroke-linejoin:round}
svg .trace.approx{stroke-dasharray:5 3}
svg .req{stroke:var(--accent);stroke-width:2;opacity:.55}
svg .phase.ph-load{fill:var(--ph-load)}svg .phase.ph-warmup{fill:var(--ph-warmup)}svg .phase.ph-measure{fill:var(--ph-measure)}
svg .phlabel{fill:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.05em}
svg .legend text{font-size:11.5px}
.c0{fill:var(--c0);stroke:var(--c0)}.c1{fill:var(--c1);stroke:var(--c1)}.c2{fill:var(--c2);stroke:var(--c2)}.c3{fill:var(--c3);stroke:var(--c3)}.c4{fill:var(--c4);stroke:var(--c4)}
.c5{fill:var(--c5);stroke:var(--c5)}.c6{fill:var(--c6);stroke:var(--c6)}.c7{fill:var(--c7);stroke:var(--c7)}.c8{fill:var(--c8);stroke:var(--c8)}.c9{fill:var(--c9);stroke:var(--c9)}
svg .trace.c0,svg .trace.c1,svg .trace.c2,svg .trace.c3,svg .trace.c4,svg .trace.c5,svg .trace.c6,svg .trace.c7,svg .trace.c8,svg .trace.c9{fill:none}
svg .swatch{stroke:none}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0 10px}
th,td{padding:5px 9px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-weight:600;color:var(--muted);font-size:12px;background:var(--panel);position:sticky;top:0}
td.num,th.num{text-align:right}
tr.group td{border-top:2px solid var(--line)}
td.num.est{color:var(--est)}
tr.flagged td:first-child{box-shadow:inset 3px 0 0 var(--est)}
.chip{display:inline-block;padding:0 6px;border-radius:9px;background:var(--flag-bg);font-size:11.5px;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.bad{color:var(--bad);font-weight:600}
table.matrix td.hit{color:var(--est);text-align:center;cursor:help}
table.matrix th.code{writing-mode:vertical-rl;transform:rotate(180deg);font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-weight:500;vertical-align:bottom;padding:8px 4px}
table.meanings,table.matrix{width:auto}
td.flags{white-space:normal;min-width:130px}
td.flags .chip{white-space:nowrap;margin:1px 0}
.note{color:var(--muted);font-size:12.5px}
footer{margin-top:40px;padding-bottom:40px;color:var(--muted);font-size:12.5px}
footer dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
footer dt{font-weight:600;color:var(--fg)}footer dd{margin:0}
@media print{
:root{--bg:#fff;--fg:#000;--muted:#444;--grid:#ddd;--axis:#888;--panel:#fff;--line:#ccc;--est-bg:#fff;--flag-bg:#eee}
body{font-size:10.5pt}
header,main,footer{max-width:none;padding:0}
figure,.card,table tr{break-inside:avoid}
figure{border:none;padding:0}
h2{break-after:avoid}
th{position:static}
.scroll{overflow:visible}
th,td{white-space:normal}
}
`

// servingCSS styles the serving section; added only to reports that have
// one, so that every other report's file stays as it was.
const servingCSS = `
.serving-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:0 14px}
.callout.slo-met{border-left-color:var(--c4);background:var(--panel)}.callout.slo-none{border-left-color:var(--bad);background:var(--panel)}.callout.slo-unknown{border-left-color:var(--axis);background:var(--panel)}
svg .slo-line{stroke:var(--bad);stroke-width:1.4;stroke-dasharray:6 4;fill:none}
svg .slo-label{fill:var(--bad);font-size:11px}
svg .ideal{stroke:var(--axis);stroke-width:1.2;stroke-dasharray:2 3;fill:none}
svg .spt{stroke-width:1.6}
svg .spt.missed{fill:var(--bg)}
svg .spt.est{stroke-dasharray:2 1.5}
svg .flag-ring{fill:none;stroke:var(--est);stroke-width:1.5;stroke-dasharray:3 2}
svg .best{fill:none;stroke-width:2}
.serving-grid figure{margin-bottom:14px}
`

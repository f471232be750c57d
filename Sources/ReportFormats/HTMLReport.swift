import LeakAnalysis
import Reachability

/// One self-contained HTML page (inline CSS and SVG, nothing fetched): the summary, plots of
/// outstanding bytes over time per top site and per process (when series are given), and each
/// process's leak groups, findings and growing sites with their stacks.
enum HTMLReport {
    static func render(_ report: LeakReport, series: [OutstandingSeries], maxFrames: Int) -> String {
        let s = report.summary
        var html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        html += "<title>LeakVisor report</title>\n<style>\n\(style)</style>\n</head>\n<body>\n"
        html += "<h1>LeakVisor report</h1>\n"
        html += "<p class=\"meta\">at \(SVGPlot.format(report.seconds)) s of tracking</p>\n"
        html += "<table id=\"summary\" class=\"summary\">\n"
        let rows: [(String, String, String)] = [
            ("outstanding", bytes(s.outstandingBytes), "\(s.outstandingBlocks)"),
            ("definitely lost", bytes(s.classes.definitelyLost.bytes), "\(s.classes.definitelyLost.blocks)"),
            ("indirectly lost", bytes(s.classes.indirectlyLost.bytes), "\(s.classes.indirectlyLost.blocks)"),
            ("possibly lost", bytes(s.classes.possiblyLost.bytes), "\(s.classes.possiblyLost.blocks)"),
            ("still reachable", bytes(s.classes.stillReachable.bytes), "\(s.classes.stillReachable.blocks)"),
            ("not scanned", bytes(s.classes.notScanned.bytes), "\(s.classes.notScanned.blocks)"),
        ]
        html += "<tr><th></th><th>bytes</th><th>blocks</th></tr>\n"
        for row in rows {
            html += "<tr class=\"\(cssClass(row.0))\"><td>\(row.0)</td><td class=\"num\">\(row.1)</td><td class=\"num\">\(row.2)</td></tr>\n"
        }
        html += "</table>\n<p class=\"counts\">\(s.allocationSites) allocation site(s) in \(s.processes) process(es); \(s.findings) finding(s)</p>\n"
        for note in report.notes { html += "<p class=\"note\">note: \(XMLText.escape(note))</p>\n" }
        if let suppressed = report.suppressed, suppressed.contains(where: { $0.groups > 0 }) {
            html += "<h2>Suppressed</h2>\n<table class=\"summary\"><tr><th>suppression</th><th>groups</th><th>blocks</th><th>bytes</th></tr>\n"
            for count in suppressed where count.groups > 0 {
                html += "<tr><td>\(XMLText.escape(count.name))</td><td class=\"num\">\(count.groups)</td>"
                    + "<td class=\"num\">\(count.blocks)</td><td class=\"num\">\(bytes(count.bytes))</td></tr>\n"
            }
            html += "</table>\n"
        }
        if !series.isEmpty {
            html += "<h2>Outstanding bytes over time</h2>\n<div class=\"plots\">\n"
            for subject in [OutstandingSeries.Subject.process, .site] {
                for one in series where one.subject == subject { html += SVGPlot.render(one) }
            }
            html += "</div>\n"
        }
        for process in report.processes { html += section(process, report: report, maxFrames: maxFrames) }
        return html + "</body>\n</html>\n"
    }

    static func section(_ process: ProcessReport, report: LeakReport, maxFrames: Int) -> String {
        let pid = process.pid.map(String.init) ?? "?"
        var html = "<section class=\"process\">\n<h2>\(XMLText.escape(process.command ?? "unknown process")) (pid \(pid), "
            + "\(XMLText.escape(process.state.rawValue)))</h2>\n"
        html += "<p>\(bytes(process.outstandingBytes)) byte(s) outstanding in \(process.outstandingBlocks) allocation(s); "
            + "\(process.allocations) allocation(s) and \(process.releases) release(s) tracked; peak \(bytes(process.peakLiveBytes)) byte(s)</p>\n"
        for group in process.groups {
            let label = group.reachability?.rawValue ?? "not scanned"
            var headline = "\(label): \(bytes(group.bytes)) byte(s) in \(group.blocks) object(s)"
            if group.indirectBytes > 0 { headline += " (+\(bytes(group.indirectBytes)) indirect)" }
            headline += " allocated by \(group.function.rawValue)"
            html += "<details class=\"group \(cssClass(label))\"\(group.reachability?.isLeak == true ? " open" : "")>\n"
            html += "<summary>\(XMLText.escape(headline))</summary>\n" + stack(group.frames, maxFrames) + "</details>\n"
        }
        for growth in process.growth {
            html += "<details class=\"group growth\" open>\n<summary>growing while referenced: \(bytes(growth.firstBytes)) → "
                + "\(bytes(growth.lastBytes)) byte(s) over \(growth.scans) scans</summary>\n" + stack(growth.frames, maxFrames) + "</details>\n"
        }
        for finding in process.findings {
            html += "<details class=\"group finding\" open>\n<summary>\(XMLText.escape(finding.kind.rawValue)) of 0x"
                + "\(String(finding.address, radix: 16)) by \(XMLText.escape(finding.releasedBy.rawValue))</summary>\n"
                + stack(finding.frames, maxFrames) + "</details>\n"
        }
        return html + "</section>\n"
    }

    static func stack(_ frames: [ReportFrame], _ maxFrames: Int) -> String {
        var html = "<ol class=\"stack\" start=\"0\">\n"
        for frame in frames.prefix(maxFrames) {
            var text = "<code>0x\(String(frame.pc, radix: 16))</code> \(XMLText.escape(FrameNaming.name(frame)))"
            if let file = frame.file {
                text += " <span class=\"file\">\(XMLText.escape(file))\(frame.line.map { ":\($0)" } ?? "")</span>"
            } else if let module = frame.module {
                text += " <span class=\"file\">(\(XMLText.escape(module)))</span>"
            }
            html += "<li>\(text)</li>\n"
        }
        if frames.count > maxFrames { html += "<li class=\"more\">… \(frames.count - maxFrames) more frame(s)</li>\n" }
        return html + "</ol>\n"
    }

    static func cssClass(_ label: String) -> String { label.replacingOccurrences(of: " ", with: "-") }

    /// A byte total; a saturated one is a lower bound.
    static func bytes(_ value: UInt64) -> String { value == .max ? "≥\(value)" : "\(value)" }

    static let style = """
        body { font-family: sans-serif; margin: 2em; color: #222; background: #fff; }
        h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
        table.summary { border-collapse: collapse; margin: 0.5em 0; }
        table.summary td, table.summary th { border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: left; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        tr.definitely-lost td:first-child, details.definitely-lost summary { color: #b00020; font-weight: bold; }
        tr.indirectly-lost td:first-child, details.indirectly-lost summary { color: #c05000; }
        tr.possibly-lost td:first-child, details.possibly-lost summary { color: #8a6d00; }
        details.group { margin: 0.4em 0; padding: 0.3em 0.6em; border-left: 4px solid #ccc; background: #f7f7f7; }
        details.definitely-lost { border-left-color: #b00020; }
        details.finding, details.growth { border-left-color: #6a1b9a; }
        ol.stack { font-family: monospace; font-size: 0.9em; margin: 0.3em 0; }
        span.file { color: #555; }
        .plots { display: flex; flex-wrap: wrap; gap: 1em; }
        svg.plot { background: #fafafa; border: 1px solid #ddd; font-size: 11px; }
        .plot-frame { fill: none; stroke: #999; }
        .plot-line { stroke: #1565c0; stroke-width: 2; }
        .plot-title { font-weight: bold; }
        .note { color: #8a6d00; }

        """
}

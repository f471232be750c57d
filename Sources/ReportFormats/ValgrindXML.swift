import AllocationLedger
import LeakAnalysis
import Reachability

/// valgrind's XML output, protocol 4, as memcheck writes it with `--xml=yes --leak-check=full
/// --show-leak-kinds=all`: one `Leak_*` error per allocation group (a loss record), smallest
/// first as valgrind numbers them, and the findings as `InvalidFree` and `MismatchedFree` errors.
/// One document holds every process of the report; the first process gives `<pid>`.
enum ValgrindXML {
    static func render(_ report: LeakReport) -> String {
        let first = report.processes.first
        var out = "<?xml version=\"1.0\"?>\n\n<valgrindoutput>\n\n<protocolversion>4</protocolversion>\n"
        out += "<protocoltool>memcheck</protocoltool>\n\n<preamble>\n"
        out += "  <line>LeakVisor, a memory-leak detector in the hypervisor (valgrind XML protocol 4)</line>\n"
        for process in report.processes {
            out += "  <line>\(XMLText.escape(describe(process)))</line>\n"
        }
        out += "</preamble>\n\n"
        out += "<pid>\(first?.pid ?? 0)</pid>\n<ppid>0</ppid>\n<tool>memcheck</tool>\n\n"
        out += "<args>\n  <vargv>\n    <exe>leakvisor</exe>\n  </vargv>\n  <argv>\n"
        out += "    <exe>\(XMLText.escape(first?.executable ?? first?.command ?? "unknown"))</exe>\n  </argv>\n</args>\n\n"
        out += "<status>\n  <state>RUNNING</state>\n  <time>\(time(0)) </time>\n</status>\n\n"
        out += "<status>\n  <state>FINISHED</state>\n  <time>\(time(report.seconds)) </time>\n</status>\n\n"

        var unique = 0
        var errorCounts: [(unique: Int, count: Int)] = []
        for process in report.processes {
            for finding in process.findings {
                guard let kind = kind(of: finding.kind) else { continue }
                out += "<error>\n  <unique>0x\(String(unique, radix: 16))</unique>\n  <tid>\(finding.thread)</tid>\n"
                out += "  <kind>\(kind.name)</kind>\n  <what>\(XMLText.escape(kind.what))</what>\n"
                out += stack(finding.frames)
                out += "  <auxwhat>Address 0x\(String(finding.address, radix: 16, uppercase: true)) \(XMLText.escape(finding.kind.rawValue)) in \(XMLText.escape(describe(process)))</auxwhat>\n"
                out += "</error>\n\n"
                errorCounts.append((unique, 1))
                unique += 1
            }
        }

        let records = lossRecords(report)
        for (index, record) in records.enumerated() {
            let group = record.group
            out += "<error>\n  <unique>0x\(String(unique, radix: 16))</unique>\n  <tid>\(group.threads.first ?? 1)</tid>\n"
            out += "  <kind>\(record.kind)</kind>\n  <xwhat>\n"
            out += "    <text>\(XMLText.escape(lossText(group, record: index + 1, of: records.count)))</text>\n"
            out += "    <leakedbytes>\(group.bytes.addingSaturated(group.indirectBytes))</leakedbytes>\n"
            out += "    <leakedblocks>\(group.blocks)</leakedblocks>\n  </xwhat>\n"
            out += stack(group.frames)
            out += "</error>\n\n"
            unique += 1
        }

        out += "<errorcounts>\n"
        for count in errorCounts {
            out += "  <pair>\n    <count>\(count.count)</count>\n    <unique>0x\(String(count.unique, radix: 16))</unique>\n  </pair>\n"
        }
        out += "</errorcounts>\n\n<suppcounts>\n"
        for count in report.suppressed ?? [] where count.groups > 0 {
            out += "  <pair>\n    <count>\(count.groups)</count>\n    <name>\(XMLText.escape(count.name))</name>\n  </pair>\n"
        }
        out += "</suppcounts>\n\n</valgrindoutput>\n\n"
        return out
    }

    /// A loss record: a group with a leak kind, in valgrind's order (ascending total size).
    struct LossRecord {
        var group: AllocationGroup
        var kind: String
    }

    static func lossRecords(_ report: LeakReport) -> [LossRecord] {
        var records: [LossRecord] = []
        for process in report.processes {
            for group in process.groups {
                guard let reachability = group.reachability else { continue }
                records.append(LossRecord(group: group, kind: leakKind(reachability)))
            }
        }
        return records.enumerated().sorted { a, b in
            let (sa, sb) = (a.element.group.bytes.addingSaturated(a.element.group.indirectBytes),
                            b.element.group.bytes.addingSaturated(b.element.group.indirectBytes))
            return sa != sb ? sa < sb : a.offset < b.offset
        }.map(\.element)
    }

    static func leakKind(_ reachability: ReachabilityClass) -> String {
        switch reachability {
        case .directLeak: "Leak_DefinitelyLost"
        case .indirectLeak: "Leak_IndirectlyLost"
        case .possiblyLost: "Leak_PossiblyLost"
        case .reachable: "Leak_StillReachable"
        }
    }

    /// memcheck's sentence, word for word ("are definitely lost in loss record 3 of 4").
    static func lossText(_ group: AllocationGroup, record: Int, of total: Int) -> String {
        let lost = group.reachability?.rawValue ?? "outstanding"
        let size = group.reachability == .directLeak && group.indirectBytes > 0
            ? "\(group.bytes.addingSaturated(group.indirectBytes)) (\(group.bytes) direct, \(group.indirectBytes) indirect) bytes"
            : "\(group.bytes) bytes"
        return "\(size) in \(group.blocks) blocks are \(lost) in loss record \(record) of \(total)"
    }

    /// memcheck's kinds and sentences for release errors (nil: no valgrind counterpart).
    static func kind(of finding: LedgerFinding.Kind) -> (name: String, what: String)? {
        switch finding {
        case .doubleFree, .unknownFree: ("InvalidFree", "Invalid free() / delete / delete[] / realloc()")
        case .mismatchedRelease: ("MismatchedFree", "Mismatched free() / delete / delete []")
        case .implausibleBlock: nil
        }
    }

    static func stack(_ frames: [ReportFrame]) -> String {
        var out = "  <stack>\n"
        for frame in frames {
            out += "    <frame>\n      <ip>0x\(String(frame.pc, radix: 16, uppercase: true))</ip>\n"
            if let module = frame.module { out += "      <obj>\(XMLText.escape(module))</obj>\n" }
            if let function = frame.function, !function.isEmpty { out += "      <fn>\(XMLText.escape(function))</fn>\n" }
            if let file = frame.file {
                let (dir, name) = split(file)
                if let dir { out += "      <dir>\(XMLText.escape(dir))</dir>\n" }
                out += "      <file>\(XMLText.escape(name))</file>\n"
                if let line = frame.line { out += "      <line>\(line)</line>\n" }
            }
            out += "    </frame>\n"
        }
        return out + "  </stack>\n"
    }

    /// "/src/a/b.c" → ("/src/a", "b.c"); "b.c" → (nil, "b.c").
    static func split(_ path: String) -> (String?, String) {
        guard let slash = path.lastIndex(of: "/") else { return (nil, path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    static func describe(_ process: ProcessReport) -> String {
        "Process \(process.command ?? "unknown") (pid \(process.pid.map(String.init) ?? "?"), \(process.state.rawValue)):"
            + " \(process.outstandingBytes) bytes outstanding in \(process.outstandingBlocks) blocks"
    }

    /// valgrind's elapsed-time stamp, days:hours:minutes:seconds.milliseconds.
    static func time(_ seconds: Double) -> String {
        let total = Int((seconds.isFinite ? min(max(seconds, 0), 1e12) : 0) * 1000)
        let (ms, s, m, h, d) = (total % 1000, total / 1000 % 60, total / 60_000 % 60, total / 3_600_000 % 24, total / 86_400_000)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let milli = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(two(d)):\(two(h)):\(two(m)):\(two(s)).\(milli)"
    }
}

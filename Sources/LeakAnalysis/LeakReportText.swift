import AllocationLedger
import Reachability

/// The human form of a `LeakReport`, laid out like LeakSanitizer's: one paragraph per
/// allocation site with its stack, a header per process, a summary line.
public enum LeakReportText {
    /// - Parameter showReachable: also list still-reachable groups (they are always counted).
    public static func render(_ report: LeakReport, maxFrames: Int = 16, showReachable: Bool = false) -> String {
        var out = ""
        for process in report.processes {
            let pid = process.pid.map(String.init) ?? "?"
            let who = "\(process.command ?? "unknown process") (pid \(pid), \(process.state.rawValue))"
            out += "==\(pid)== LeakVisor: \(who): \(bytes(process.outstandingBytes)) byte(s) outstanding"
                + " in \(process.outstandingBlocks) allocation(s); \(process.allocations) allocation(s) and"
                + " \(process.releases) release(s) tracked\n"
            if let scan = process.scan {
                let f = scan.figures
                out += "==\(pid)== reachability scan (\(f.kind)) at \(String(format1: scan.seconds)) s: \(f.threads) thread(s),"
                    + " \(f.rootBytes) root byte(s), \(f.bytesScanned) byte(s) scanned, \(f.pagesRead) page(s) read,"
                    + " \(f.pagesReused) reused, \(f.pagesDirtied) dirtied since the previous scan\n"
                if !scan.complete {
                    out += "==\(pid)== scan INCOMPLETE: \(scan.classes.notScanned.blocks) block(s) not classified"
                        + " (counted as not scanned, not as leaks)\n"
                }
                for note in scan.notes.prefix(5) { out += "==\(pid)== note: \(note)\n" }
            }
            for group in process.groups where showReachable || group.reachability != .reachable {
                // Blocks found in glibc's heap at `leakvisor attach`: no allocator call was seen.
                out += "\n" + headline(group) + (group.function == .beforeAttach ? " allocated before the attach"
                                                 : " allocated by \(group.function.rawValue)")
                if group.blocks > 1 {
                    out += " (sizes \(group.sizes.map(String.init).joined(separator: ", "))\(group.blocks > group.sizes.count ? ", ..." : ""))"
                }
                out += ", age \(age(report.seconds - group.newestSeconds))"
                if group.blocks > 1 { out += " to \(age(report.seconds - group.oldestSeconds))" }
                if let written = group.lastWrittenSeconds { out += ", last written \(age(report.seconds - written)) ago" }
                out += ", thread\(group.threads.count > 1 ? "s" : "") \(group.threads.map(String.init).joined(separator: ", "))"
                out += group.frames.isEmpty ? " (no stack)\n" : ", from:\n" + frames(group.frames, maxFrames)
            }
            for growth in process.growth {
                out += "\nGrowing while referenced: \(bytes(growth.firstBytes)) -> \(bytes(growth.lastBytes)) byte(s)"
                    + " (\(growth.firstBlocks) -> \(growth.lastBlocks) object(s)) over \(growth.scans) scans in"
                    + " \(age(growth.seconds)), \(growth.staleBlocks) of them not written lately, allocated by"
                    + " \(growth.function.rawValue) from:\n"
                out += frames(growth.frames, maxFrames)
            }
            for finding in process.findings {
                out += "\n\(finding.kind.rawValue.capitalizedFirst) of 0x\(String(finding.address, radix: 16))"
                if let size = finding.size { out += " (\(size) byte(s))" }
                out += " by \(finding.releasedBy.rawValue)"
                if let allocatedBy = finding.allocatedBy { out += " (allocated by \(allocatedBy.rawValue))" }
                out += ", thread \(finding.thread), from:\n"
                out += frames(finding.frames, maxFrames)
            }
            if let scan = process.scan {
                out += "\n==\(pid)== LEAK SUMMARY: " + classLine(scan.classes) + "\n"
            }
            out += "\n"
        }
        if let kernel = report.kernel { out += kernelSection(kernel, seconds: report.seconds, maxFrames: maxFrames) }
        let s = report.summary
        for note in report.notes { out += "leakvisor: note: \(note)\n" }
        if let suppressed = report.suppressed { out += suppressionsUsed(suppressed) }
        out += "SUMMARY: LeakVisor: \(bytes(s.outstandingBytes)) byte(s) outstanding in \(s.outstandingBlocks) allocation(s)"
            + " from \(s.allocationSites) site(s) in \(s.processes) process(es); " + classLine(s.classes)
            + "; \(s.findings) finding(s).\n"
        return out
    }

    /// LeakSanitizer's "Suppressions used" table: groups, bytes and name per suppression that matched.
    static func suppressionsUsed(_ counts: [SuppressedCount]) -> String {
        let used = counts.filter { $0.groups > 0 }
        guard !used.isEmpty else { return "" }
        var out = "-----------------------------------------------------\nSuppressions used:\n  count      bytes template\n"
        for count in used {
            let groups = String(count.groups), size = bytes(count.bytes)
            out += String(repeating: " ", count: max(0, 7 - groups.count)) + groups
                + String(repeating: " ", count: max(1, 11 - size.count)) + size + " \(count.name)\n"
        }
        return out + "-----------------------------------------------------\n"
    }

    /// "definitely lost: 96 byte(s) in 3 object(s); ..." (not-scanned only when there are such blocks).
    static func classLine(_ c: ClassTotals) -> String {
        var parts = [("definitely lost", c.definitelyLost), ("indirectly lost", c.indirectlyLost),
                     ("possibly lost", c.possiblyLost), ("still reachable", c.stillReachable)]
        if c.notScanned.blocks > 0 { parts.append(("not scanned", c.notScanned)) }
        var line = parts.map { "\($0.0): \(bytes($0.1.bytes)) byte(s) in \($0.1.blocks) object(s)" }.joined(separator: "; ")
        if let via = c.reachableViaHeuristic, !via.isEmpty {
            let order = LeakCheckHeuristic.allCases.map(\.rawValue)
            let sorted = via.sorted { (order.firstIndex(of: $0.key) ?? order.count, $0.key) < (order.firstIndex(of: $1.key) ?? order.count, $1.key) }
            line += " (of which reachable via heuristic: "
                + sorted.map { "\($0.key) \(bytes($0.value.bytes)) byte(s) in \($0.value.blocks) object(s)" }.joined(separator: ", ") + ")"
        }
        return line
    }

    /// The first words of a group's paragraph, by class (LeakSanitizer's for leaks).
    static func headline(_ group: AllocationGroup) -> String {
        let objects = "in \(group.blocks) object(s)"
        switch group.reachability {
        case .directLeak?:
            if group.indirectBytes > 0 {
                return "Direct leak of \(bytes(group.bytes.addingSaturated(group.indirectBytes))) (\(bytes(group.bytes)) direct,"
                    + " \(bytes(group.indirectBytes)) indirect) byte(s) \(objects)"
            }
            return "Direct leak of \(bytes(group.bytes)) byte(s) \(objects)"
        case .indirectLeak?: return "Indirect leak of \(bytes(group.bytes)) byte(s) \(objects)"
        case .possiblyLost?: return "Possibly lost: \(bytes(group.bytes)) byte(s) \(objects)"
        case .reachable?:
            let stale = group.staleBlocks.map { $0 > 0 ? " (\($0) not written lately)" : "" } ?? ""
            return "Still reachable: \(bytes(group.bytes)) byte(s) \(objects)\(stale)"
        case nil: return "Outstanding: \(bytes(group.bytes)) byte(s) \(objects)"
        }
    }

    /// A stack, one line per frame, innermost first (at most `maxFrames`).
    public static func frames(_ frames: [ReportFrame], _ maxFrames: Int) -> String {
        var out = ""
        for (index, frame) in frames.prefix(maxFrames).enumerated() {
            out += "    #\(index) 0x\(String(frame.pc, radix: 16))"
            if let function = frame.function {
                out += " in \(function)"
            }
            if let file = frame.file {
                out += " \(file)"
                if let line = frame.line { out += ":\(line)" }
            } else if let module = frame.module {
                out += " (\(module)\(frame.function == nil ? "" : "+0x\(String(frame.offset ?? 0, radix: 16))"))"
            }
            out += "\n"
        }
        if frames.count > maxFrames { out += "    ... \(frames.count - maxFrames) more frame(s)\n" }
        return out
    }

    /// A byte total; a saturated one (2^64 − 1) is a lower bound and says so.
    static func bytes(_ value: UInt64) -> String { value.isSaturated ? "≥\(value)" : "\(value)" }

    static func age(_ seconds: Double) -> String {
        let s = seconds.isNaN ? 0 : min(max(0, seconds), 1e15)
        if s < 1 { return "\(Int(s * 1000)) ms" }
        if s < 120 { return String(format1: s) + " s" }
        return "\(Int(s / 60)) min"
    }
}

extension String {
    fileprivate init(format1 value: Double) {
        let tenths = Int((value.isNaN ? 0 : Swift.min(Swift.max(value, -1e15), 1e15) * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }

    fileprivate var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}

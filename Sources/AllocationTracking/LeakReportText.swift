/// The human form of a `LeakReport`, laid out like LeakSanitizer's: one paragraph per
/// allocation site with its stack, a header per process, a summary line.
public enum LeakReportText {
    public static func render(_ report: LeakReport, maxFrames: Int = 16) -> String {
        var out = ""
        for process in report.processes {
            let who = "\(process.command ?? "unknown process") (pid \(process.pid.map(String.init) ?? "?"), \(process.state.rawValue))"
            out += "==\(process.pid.map(String.init) ?? "?")== LeakVisor: \(who): \(process.outstandingBytes) byte(s) outstanding"
                + " in \(process.outstandingBlocks) allocation(s); \(process.allocations) allocation(s) and"
                + " \(process.releases) release(s) tracked\n"
            for group in process.groups {
                out += "\nOutstanding: \(group.bytes) byte(s) in \(group.blocks) object(s) allocated by \(group.function.rawValue)"
                if group.blocks > 1 {
                    out += " (sizes \(group.sizes.map(String.init).joined(separator: ", "))\(group.blocks > group.sizes.count ? ", ..." : ""))"
                }
                out += ", age \(age(report.seconds - group.newestSeconds))"
                if group.blocks > 1 { out += " to \(age(report.seconds - group.oldestSeconds))" }
                out += ", thread\(group.threads.count > 1 ? "s" : "") \(group.threads.map(String.init).joined(separator: ", ")), from:\n"
                out += frames(group.frames, maxFrames)
            }
            for finding in process.findings {
                out += "\n\(finding.kind.rawValue.capitalizedFirst) of 0x\(String(finding.address, radix: 16)) by \(finding.releasedBy.rawValue)"
                if let allocatedBy = finding.allocatedBy { out += " (allocated by \(allocatedBy.rawValue))" }
                out += ", thread \(finding.thread), from:\n"
                out += frames(finding.frames, maxFrames)
            }
            out += "\n"
        }
        let s = report.summary
        out += "SUMMARY: LeakVisor: \(s.outstandingBytes) byte(s) outstanding in \(s.outstandingBlocks) allocation(s)"
            + " from \(s.allocationSites) site(s) in \(s.processes) process(es); \(s.findings) finding(s).\n"
        return out
    }

    static func frames(_ frames: [ReportFrame], _ maxFrames: Int) -> String {
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

    static func age(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 1 { return "\(Int(s * 1000)) ms" }
        if s < 120 { return String(format1: s) + " s" }
        return "\(Int(s / 60)) min"
    }
}

extension String {
    fileprivate init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }

    fileprivate var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}

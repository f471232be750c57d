import AllocationLedger
import Reachability

extension LeakReportText {
    /// The kernel section: a header like a process's, the latest scan, one paragraph per group of
    /// reported leaks with its call site and stack, the findings and a leak summary.
    public static func kernelSection(_ k: KernelReport, seconds: Double, maxFrames: Int = 16) -> String {
        let tag = "==kernel=="
        var out = "\(tag) LeakVisor: guest kernel: \(bytes(k.outstandingBytes)) byte(s) outstanding in \(k.outstandingObjects)"
            + " object(s); \(k.allocations) allocation(s) and \(k.frees) free(s) tracked\n"
        if let scan = k.scan {
            out += "\(tag) kernel scan \(scan.scans) at \(String(format: "%.1f", scan.seconds)) s: \(scan.objects) object(s),"
                + " \(scan.rootBytes) root byte(s), \(scan.bytesScanned) byte(s) scanned, \(scan.writtenObjects) object(s) written"
                + " since the previous scan" + (scan.pagesRead.map { "; \($0) page(s) read, \(scan.pagesReused ?? 0) reused" } ?? "")
                + "; pause \(String(format: "%.0f", scan.pauseSeconds * 1000)) ms\n"
            if !scan.complete {
                out += "\(tag) scan INCOMPLETE: nothing new reported (\(scan.problems.prefix(3).joined(separator: "; ")))\n"
            }
        }
        for note in k.notes { out += "\(tag) note: \(note)\n" }
        for group in k.groups {
            let what = group.reachability == .indirectLeak ? "Indirect leak of \(bytes(group.bytes)) byte(s)"
                : group.indirectBytes > 0
                    ? "Direct leak of \(bytes(group.bytes.addingSaturated(group.indirectBytes))) (\(bytes(group.bytes)) direct, \(bytes(group.indirectBytes)) indirect) byte(s)"
                    : "Direct leak of \(bytes(group.bytes)) byte(s)"
            out += "\n\(what) in \(group.objects) kernel object(s) (\(bytes(group.requestedBytes)) requested) allocated by "
                + group.allocator.rawValue + (group.cache.map { " from cache \($0)" } ?? "")
            if group.objects > 1 { out += " (sizes \(group.sizes.map(String.init).joined(separator: ", ")))" }
            out += ", age \(age(seconds - group.newestSeconds))"
            if group.objects > 1 { out += " to \(age(seconds - group.oldestSeconds))" }
            out += ", called from " + frameText(group.callSite)
            out += group.frames.isEmpty ? " (no stack)\n" : ", stack:\n" + frames(group.frames, maxFrames)
        }
        for f in k.findings.prefix(20) {
            out += "\nKernel \(f.kind) of 0x\(String(f.address, radix: 16)) by \(f.freedBy ?? "?")"
                + (f.allocatedBy.map { " (allocated by \($0))" } ?? "") + " from \(frameText(f.callSite))\n"
        }
        if k.findings.count > 20 { out += "... \(k.findings.count - 20) more kernel finding(s)\n" }
        out += "\n\(tag) KERNEL LEAK SUMMARY: " + classLine(k.classes)
            + "; unreferenced but not yet reported: \(bytes(k.held.bytes)) byte(s) in \(k.held.blocks) object(s)\n\n"
        return out
    }

    /// `function+0xoff file:line (module)` of one frame.
    static func frameText(_ f: ReportFrame) -> String {
        var out = f.function.map { $0 + (f.offset.map { $0 > 0 ? "+0x" + String($0, radix: 16) : "" } ?? "") } ?? "0x" + String(f.pc, radix: 16)
        if let file = f.file { out += " \(file)" + (f.line.map { ":\($0)" } ?? "") }
        if let module = f.module, module != "vmlinux" { out += " [\(module)]" }
        return out
    }
}

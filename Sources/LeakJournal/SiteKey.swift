import LeakAnalysis

/// The stable name of an allocation site across samples (and across runs of the same binaries):
/// the allocator function and, per frame, the symbol with its offset, else the module and pc.
/// Addresses alone would change with every ASLR layout; symbols do not.
public enum SiteKey {
    public static func of(function: String, frames: [ReportFrame]) -> String {
        ([function] + frames.map(frameKey)).joined(separator: ";")
    }

    static func frameKey(_ frame: ReportFrame) -> String {
        if let function = frame.function { return "\(function)+0x\(String(frame.offset ?? 0, radix: 16))" }
        if let module = frame.module { return "\(module)@0x\(String(frame.pc, radix: 16))" }
        return "0x\(String(frame.pc, radix: 16))"
    }
}

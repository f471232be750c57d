import AllocationLedger
import DebugInfo
import Introspection

/// Symbolizes a guest address space's stack frames with libdwfl over the host copies of the
/// files it maps (`GuestSymbolFiles`). One per address space; caches its libdwfl session.
public final class FrameSymbolizer {
    private let symbolizer: Symbolizer?
    private let modules: [GuestMapping]
    private var cache: [UInt64: ReportFrame] = [:]

    public init(modules: [GuestMapping], files: GuestSymbolFiles) {
        self.modules = modules
        let symbolizer = try? files.makeSymbolizer()
        if let symbolizer { files.addModules(of: modules, to: symbolizer) }
        self.symbolizer = symbolizer
    }

    /// The frame for `pc`. `isReturnAddress` looks up `pc - 1` so the line is the call's.
    public func frame(_ pc: UInt64, isReturnAddress: Bool) -> ReportFrame {
        let key = pc << 1 | (isReturnAddress ? 1 : 0)
        if let cached = cache[key] { return cached }
        var frame = ReportFrame(pc: pc, module: modules.first { $0.start <= pc && pc < $0.end && $0.path.hasPrefix("/") }?.path)
        if let location = symbolizer?.symbolize(pc: isReturnAddress ? pc &- 1 : pc) {
            frame.function = location.function
            frame.offset = location.function == nil ? nil : location.functionOffset &+ (isReturnAddress ? 1 : 0)
            frame.file = location.file
            frame.line = location.line
            frame.module = location.module
        }
        cache[key] = frame
        return frame
    }
}

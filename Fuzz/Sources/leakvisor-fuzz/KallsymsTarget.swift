import AllocationLedger
import AllocationTracing
import Introspection
import LeakAnalysis

/// Kallsyms found and decoded in an image of kernel memory: 8 bytes of base address, then the image.
enum KallsymsTarget {
    static let target = FuzzTarget(name: "kallsyms") { input in
        var input = input
        let base = input.u64()
        guard let table = try? Kallsyms.locate(in: input.rest(), base: base) else { return }
        _ = KernelSymbols(kallsyms: table).address(of: "init_task")
    }
}

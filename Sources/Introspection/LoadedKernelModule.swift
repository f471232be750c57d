/// One module on the guest kernel's `modules` list, as `KernelView.loadedModules()` reads it:
/// its name and where its memory lies (run-time addresses). Symbols, ORC tables and section
/// addresses are read apart (`moduleDetails(of:)`), only when something needs them.
public struct LoadedKernelModule: Sendable, Equatable, Codable {
    /// `enum module_states`.
    public enum State: String, Sendable, Codable {
        case live, coming, going, unformed, unknown

        init(raw: UInt32) {
            self = [0: .live, 1: .coming, 2: .going, 3: .unformed][raw] ?? .unknown
        }
    }

    public let name: String
    /// Address of its `struct module`.
    public let address: UInt64
    public let state: State
    /// The whole core region (`core_layout`): text, rodata, ro_after_init, data and bss.
    public let coreRange: Range<UInt64>
    public let textRange: Range<UInt64>
    public let rodataRange: Range<UInt64>
    /// The writable parts of the core region: ro_after_init (written during init) and data+bss.
    /// Reachability roots for kernel scans. Empty parts are left out.
    public let dataRanges: [Range<UInt64>]
    /// The init region (`init_layout`) while it exists (the module is still initialising), and its text.
    public let initRange: Range<UInt64>?
    public let initTextRange: Range<UInt64>?

    public init(name: String, address: UInt64, state: State, coreRange: Range<UInt64>, textRange: Range<UInt64>,
                rodataRange: Range<UInt64>, dataRanges: [Range<UInt64>], initRange: Range<UInt64>?, initTextRange: Range<UInt64>?) {
        self.name = name
        self.address = address
        self.state = state
        self.coreRange = coreRange
        self.textRange = textRange
        self.rodataRange = rodataRange
        self.dataRanges = dataRanges
        self.initRange = initRange
        self.initTextRange = initTextRange
    }

    /// Whether `address` is code of this module (core or init text).
    public func containsText(_ address: UInt64) -> Bool {
        textRange.contains(address) || initTextRange?.contains(address) == true
    }

    /// Whether `address` lies anywhere in the module's memory.
    public func contains(_ address: UInt64) -> Bool {
        coreRange.contains(address) || initRange?.contains(address) == true
    }
}

extension LoadedKernelModule {
    /// Splits a `struct module_layout` (base and the cumulative sizes the kernel keeps) into ranges.
    /// The values come from the guest: sizes that do not nest (text ≤ ro ≤ ro_after_init ≤ size),
    /// a region over 1 GiB, one that wraps past 2^64 or lies outside the kernel half are errors.
    static func regions(base: UInt64, size: UInt64, textSize: UInt64, roSize: UInt64, roAfterInitSize: UInt64,
                        what: String) throws(IntrospectionError)
        -> (all: Range<UInt64>, text: Range<UInt64>, rodata: Range<UInt64>, roAfterInit: Range<UInt64>, data: Range<UInt64>)
    {
        guard textSize <= roSize, roSize <= roAfterInitSize, roAfterInitSize <= size else {
            throw .inconsistent("\(what): sizes do not nest (text \(textSize), ro \(roSize), ro_after_init \(roAfterInitSize), size \(size))")
        }
        guard size <= 1 << 30 else { throw .inconsistent("\(what): size \(size) is over 1 GiB") }
        let (end, overflow) = base.addingReportingOverflow(size)
        guard !overflow, base >= KernelSymbols.kernelHalf else {
            throw .inconsistent("\(what): base 0x\(String(base, radix: 16)) is not a kernel address")
        }
        let text = base &+ textSize, ro = base &+ roSize, roAfterInit = base &+ roAfterInitSize
        return (base..<end, base..<text, text..<ro, ro..<roAfterInit, roAfterInit..<end)
    }
}

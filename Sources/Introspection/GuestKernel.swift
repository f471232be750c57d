/// What the monitor knows about the guest's kernel from its image: symbols (link-time
/// addresses) and structure layouts from BTF. Immutable; shared by every pause.
public final class GuestKernel: Sendable {
    public let symbols: KernelSymbols
    public let layout: KernelLayout

    public init(symbols: KernelSymbols, layout: KernelLayout) {
        self.symbols = symbols
        self.layout = layout
    }
}

/// A kernel address as `symbol+offset [module]`: what `KernelView.locate(kernelAddress:)` finds.
public struct KernelAddressSymbol: Sendable, Equatable {
    public let name: String
    public let offset: UInt64
    /// The loaded module holding the address; nil for the kernel image.
    public let module: String?

    /// `name+0xoff`, with ` [module]` for module code.
    public var description: String {
        name + (offset != 0 ? "+0x" + String(offset, radix: 16) : "") + (module.map { " [\($0)]" } ?? "")
    }
}

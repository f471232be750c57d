/// One model-specific register: its index and value, as KVM_GET/SET_MSRS exchange them.
public struct MSREntry: Sendable, Equatable, Hashable {
    public var index: UInt32
    public var value: UInt64

    public init(index: UInt32, value: UInt64) {
        self.index = index
        self.value = value
    }
}

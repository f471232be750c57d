import KVM

/// One piece of KVM state, for reports of what a host refused.
public enum StatePart: Sendable, Equatable, Hashable, CustomStringConvertible {
    case cpuid, registers, specialRegisters, msrIndexList, msr(UInt32), xsave, fpu, extendedControlRegisters
    case localAPIC, events, debugRegisters, mpState, tscKHz
    case irqChip(IRQChipID), pit, clock

    public var description: String {
        switch self {
        case .cpuid: return "CPUID2"
        case .registers: return "REGS"
        case .specialRegisters: return "SREGS"
        case .msrIndexList: return "MSR_INDEX_LIST"
        case .msr(let index): return "MSR 0x\(String(index, radix: 16))"
        case .xsave: return "XSAVE"
        case .fpu: return "FPU"
        case .extendedControlRegisters: return "XCRS"
        case .localAPIC: return "LAPIC"
        case .events: return "VCPU_EVENTS"
        case .debugRegisters: return "DEBUGREGS"
        case .mpState: return "MP_STATE"
        case .tscKHz: return "TSC_KHZ"
        case .irqChip(let chip): return "IRQCHIP(\(chip))"
        case .pit: return "PIT2"
        case .clock: return "CLOCK"
        }
    }
}

/// A part the host would not get or set: left out of the state (capture) or not put back
/// (restore). `vcpu` is nil for VM-wide parts.
public struct StateRefusal: Sendable, Equatable, CustomStringConvertible {
    public let part: StatePart
    public let vcpu: Int?
    public let reason: String

    public init(part: StatePart, vcpu: Int?, reason: String) {
        self.part = part; self.vcpu = vcpu; self.reason = reason
    }

    init(part: StatePart, vcpu: Int?, error: KVMError) {
        self.init(part: part, vcpu: vcpu, reason: error.description)
    }

    public var description: String {
        (vcpu.map { "vCPU \($0) " } ?? "") + "\(part): \(reason)"
    }
}

/// Why a state could not be captured or restored.
public enum KVMStateError: Error, Sendable, CustomStringConvertible {
    /// A required part failed, or an optional one failed in a way that is not a refusal.
    case kvm(StatePart, KVMError)
    /// The state names a different number or ids of vCPUs than the VM it is restored into.
    case vcpuMismatch(expected: [UInt32], given: [Int])
    /// The state has irqchip or PIT state but the VM was created without them.
    case missingDevice(StatePart)

    public var description: String {
        switch self {
        case .kvm(let part, let error): return "\(part): \(error)"
        case .vcpuMismatch(let expected, let given):
            return "the state has vCPUs \(expected), the VM has \(given)"
        case .missingDevice(let part): return "the state has \(part) but the VM has no such in-kernel device"
        }
    }
}

import Glibc
import KVM

/// Runs the KVM call for an optional part of the state. A refusal by the host is recorded in
/// `refusals` and gives nil; ENXIO (the device is not there: no in-kernel irqchip, PIT or local
/// APIC) gives nil silently; any other failure is thrown.
func attempt<T>(_ part: StatePart, vcpu: Int?, _ refusals: inout [StateRefusal],
                _ body: () throws(KVMError) -> T) throws(KVMStateError) -> T? {
    do {
        return try body()
    } catch {
        if error.errno == ENXIO { return nil }
        if error.isRefusalByHost {
            refusals.append(StateRefusal(part: part, vcpu: vcpu, error: error))
            return nil
        }
        throw .kvm(part, error)
    }
}

/// Runs the KVM call for a part the state cannot do without.
func required<T>(_ part: StatePart, _ body: () throws(KVMError) -> T) throws(KVMStateError) -> T {
    do { return try body() } catch { throw .kvm(part, error) }
}

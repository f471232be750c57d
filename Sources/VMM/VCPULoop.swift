import CKVM
import Devices
import Foundation
import GuestInterface
import GuestMemory
import KVM
import X86

/// Runs one vCPU until the machine stops: dispatches exits to devices, the host assistant and
/// the machine state. Never lets a guest action crash or hang the monitor: unknown events end
/// the run with a report.
struct VCPULoop {
    let vcpu: VirtualCPU
    let devices: DeviceHub
    let state: MachineState
    let assistant: VCPUAssistant
    let memory: GuestMemory
    /// Whether this host's state ioctls capture a vCPU in user mode completely (`HostPolicy`).
    let userModeStateSavable: Bool

    func run() {
        var exits = 0
        var userSpaceNoted = false
        state.pause.join()
        defer {
            state.pause.leave()
            state.add(exits: exits, statistics: assistant.statistics)
        }
        do throws(VMMError) {
            // A restored vCPU is already past the boot: its gates (the system-call completion's
            // on kvm_pvm) must be in place before it runs any guest code.
            try assistant.afterExit(vcpu)
            while !state.stopping {
                state.pause.parkIfRequested(vcpu, userModeStateSavable: userModeStateSavable)
                try assistant.beforeEntry(vcpu)
                let exit: VCPUExit
                do { exit = try vcpu.run() } catch { throw VMMError.kvm(error) }
                exits += 1
                if Trace.enabled { trace(exit) }
                try handle(exit)
                try assistant.afterExit(vcpu)
                if assistant.sawUserSpace, !userSpaceNoted {
                    userSpaceNoted = true
                    state.noteUserSpaceSeen()
                }
            }
        } catch {
            state.finish(.failed(error))
        }
    }

    private func handle(_ exit: VCPUExit) throws(VMMError) {
        switch exit {
        case .portIO(let access):
            if access.isWrite, access.port == KernelHookPort.port, try assistant.handleKernelHook(vcpu: vcpu) { break }
            handlePort(access)
        case .mmio(let access):
            if access.isWrite, access.address == ControlPage.base + PayloadChannel.copyOffset {
                try copyPayloadChunk(access)
                break
            }
            handleMMIO(access)
            if access.isWrite, access.address == ControlPage.base + PayloadChannel.takenOffset, devices.payload.taken {
                try assistant.announceUserSpace(vcpu)
            }
        case .halt, .interrupted:
            break
        case .shutdown:
            state.finish(.shutdown)
        case .systemEvent(let type):
            state.finish(type == UInt32(KVM_SYSTEM_EVENT_RESET) ? .reset : .shutdown)
        case .debug(let event):
            if try !assistant.handleDebug(event, vcpu: vcpu) {
                throw VMMError.unhandledGuestEvent(
                    "vCPU \(vcpu.id): unexpected debug exit at 0x\(String(event.pc, radix: 16)) (exception \(event.exception))")
            }
        case .internalError(let sub, let data, let bytes):
            try assistant.handleEmulationFailure(suberror: sub, data: data, bytes: bytes, vcpu: vcpu)
        case .failEntry(let reason):
            throw VMMError.unhandledGuestEvent("vCPU \(vcpu.id): KVM could not enter the guest (hardware reason 0x\(String(reason, radix: 16)))")
        case .other(let reason):
            throw VMMError.unhandledGuestEvent("vCPU \(vcpu.id): unhandled KVM exit reason \(reason)")
        }
    }

    private func trace(_ exit: VCPUExit) {
        switch exit {
        case .portIO: return
        default:
            guard let regs = try? vcpu.registers(), let sregs = try? vcpu.specialRegisters() else { return }
            var line = "vcpu\(vcpu.id) exit \(exit) rip=0x\(String(regs.rip, radix: 16))"
            if case .interrupted = exit, sregs.cs.dpl == 0 {
                // Kernel-text-looking words on the stack: a cheap call-chain hint for profiling.
                let space = AddressSpace(memory: memory, cr3: sregs.cr3, cr4: sregs.cr4)
                let stack = GuestVirtualAddress(regs.rsp)
                let words = (0..<96).compactMap { try? space.load(UInt64.self, at: stack.advanced(by: $0 * 8)) }
                let text = words.filter { $0 >> 32 == 0xFFFF_FFFF && $0 >= 0xFFFF_FFFF_8100_0000 }
                line += " stack=" + text.prefix(12).map { String($0, radix: 16) }.joined(separator: ",")
            }
            Trace.log(line)
        }
    }

    private func handlePort(_ access: PortAccess) {
        let size = access.size
        if access.isWrite {
            for i in 0..<access.count {
                var value: UInt32 = 0
                for b in 0..<size { value |= UInt32(access.data[i * size + b]) << (8 * b) }
                devices.ports.write(port: access.port, size: size, value: value)
            }
        } else {
            var bytes: [UInt8] = []
            for _ in 0..<access.count {
                let value = devices.ports.read(port: access.port, size: size) ?? UInt32.max
                for b in 0..<size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * b))) }
            }
            vcpu.completeIn(bytes)
        }
    }

    /// The guest's `lv-payload` asked for the next chunk of its payload: copied into the buffer it
    /// named, through the page tables of the process on this vCPU, as a user-mode store would
    /// (present, user, writable pages only; otherwise nothing is written and the guest is told).
    private func copyPayloadChunk(_ access: MMIOAccess) throws(VMMError) {
        let length = access.data.withUnsafeBytes { ControlPage.littleEndian($0) }
        let sregs: kvm_sregs
        do { sregs = try vcpu.specialRegisters() } catch { throw .kvm(error) }
        let space = AddressSpace(memory: memory, cr3: sregs.cr3, cr4: sregs.cr4)
        let noExecute = sregs.efer & (1 << 11) != 0
        devices.payload.copyNextChunk(length: length) { destination, bytes in
            guard sregs.cs.dpl == 3 else { return false }
            return (try? space.writeUser(bytes, at: destination, noExecute: noExecute)) != nil
        }
    }

    private func handleMMIO(_ access: MMIOAccess) {
        if access.isWrite {
            // SAFETY: the buffer is valid for the call only, and devices copy from it without keeping it.
            access.data.withUnsafeBytes { _ = devices.mmio.write(address: access.address, from: $0) }
        } else {
            var bytes = [UInt8](repeating: 0xFF, count: max(0, min(access.length, 8)))
            // SAFETY: the buffer is valid for the call only; devices write at most its count (8 at most).
            bytes.withUnsafeMutableBytes { _ = devices.mmio.read(address: access.address, into: $0) }
            vcpu.completeMMIORead(bytes)
        }
    }
}

import Synchronization

/// i8042 keyboard controller at 0x60-0x64 (register with base 0x60 length 5).
///
/// Only what Linux needs: status reads say no data unless a controller command has queued
/// a reply (CTR read, self-tests), so the driver's polls finish fast; command 0xFE on port
/// 0x64 pulses reset and calls `onReset` (the `reboot=k` path). Port 0x61 (offset 1), the
/// speaker/NMI status port, returns 0x20 with bit 5 toggling on each read.
/// `onReset` is called outside the device lock.
public final class I8042Controller: PortIODevice {
    // Offsets from 0x60.
    static let dataPort: UInt16 = 0, systemControlB: UInt16 = 1, commandPort: UInt16 = 4
    // Status bits.
    static let statusOutputFull: UInt8 = 0x01, statusSystemFlag: UInt8 = 0x04
    static let statusCommand: UInt8 = 0x08, statusAuxData: UInt8 = 0x20
    // Controller commands.
    static let readCTR: UInt8 = 0x20, writeCTR: UInt8 = 0x60, selfTest: UInt8 = 0xAA
    static let auxTest: UInt8 = 0xA9, kbdTest: UInt8 = 0xAB, writeKbdOutput: UInt8 = 0xD2
    static let writeAuxOutput: UInt8 = 0xD3, pulseReset: UInt8 = 0xFE

    private struct State {
        var ctr: UInt8 = 0x45  // kbd interrupt, system flag, translation
        var pendingCommand: UInt8?
        var output: UInt8?
        var outputIsAux = false
        var lastWasCommand = false
        var port61Toggle = false
    }

    private let state = Mutex(State())
    private let onReset: @Sendable () -> Void

    public init(onReset: @escaping @Sendable () -> Void) {
        self.onReset = onReset
    }

    public func read(offset: UInt16, size: Int) -> UInt32 {
        state.withLock { s in
            switch offset {
            case Self.dataPort:
                let value = s.output ?? 0
                s.output = nil
                return UInt32(value)
            case Self.systemControlB:
                s.port61Toggle.toggle()
                return s.port61Toggle ? 0x20 : 0x00
            case Self.commandPort:
                var status = Self.statusSystemFlag
                if s.lastWasCommand { status |= Self.statusCommand }
                if s.output != nil {
                    status |= Self.statusOutputFull
                    if s.outputIsAux { status |= Self.statusAuxData }
                }
                return UInt32(status)
            default:
                return 0xFF
            }
        }
    }

    public func write(offset: UInt16, size: Int, value: UInt32) {
        let byte = UInt8(truncatingIfNeeded: value)
        let reset = state.withLock { s -> Bool in
            switch offset {
            case Self.commandPort:
                s.lastWasCommand = true
                return Self.command(byte, &s)
            case Self.dataPort:
                s.lastWasCommand = false
                Self.data(byte, &s)
            default:
                break
            }
            return false
        }
        if reset { onReset() }
    }

    /// Handles a controller command; returns true for a CPU reset.
    private static func command(_ command: UInt8, _ s: inout State) -> Bool {
        s.pendingCommand = nil
        switch command {
        case readCTR: reply(s.ctr, &s)
        case selfTest: reply(0x55, &s)
        case auxTest, kbdTest: reply(0x00, &s)
        case writeCTR, writeKbdOutput, writeAuxOutput: s.pendingCommand = command
        case pulseReset: return true
        default: break  // enable/disable ports and the rest: accepted, no effect
        }
        return false
    }

    private static func data(_ byte: UInt8, _ s: inout State) {
        guard let command = s.pendingCommand else { return }  // bytes for the keyboard: no device
        s.pendingCommand = nil
        switch command {
        case writeCTR: s.ctr = byte
        case writeKbdOutput: reply(byte, &s)
        case writeAuxOutput: reply(byte, aux: true, &s)
        default: break
        }
    }

    private static func reply(_ byte: UInt8, aux: Bool = false, _ s: inout State) {
        s.output = byte
        s.outputIsAux = aux
    }
}

extension I8042Controller {
    public func snapshot() -> I8042State {
        state.withLock { s in
            I8042State(configuration: s.ctr, pendingCommand: s.pendingCommand, output: s.output, outputIsAux: s.outputIsAux,
                       lastWasCommand: s.lastWasCommand, port61Toggle: s.port61Toggle)
        }
    }

    public func restore(_ saved: I8042State) throws(DeviceStateError) {
        if let command = saved.pendingCommand, ![Self.writeCTR, Self.writeKbdOutput, Self.writeAuxOutput].contains(command) {
            throw .invalid(device: "i8042", reason: "pending command 0x\(String(command, radix: 16)) takes no data byte")
        }
        state.withLock { s in
            s = State(ctr: saved.configuration, pendingCommand: saved.pendingCommand, output: saved.output,
                      outputIsAux: saved.outputIsAux, lastWasCommand: saved.lastWasCommand, port61Toggle: saved.port61Toggle)
        }
    }
}

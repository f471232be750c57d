import Synchronization

/// 16550A UART (the guest's ttyS0 at 0x3F8, IRQ 4).
///
/// Transmission is instantaneous: THR writes go straight to `output`, so LSR always reports
/// THRE|TEMT. The interrupt line is recomputed after every access and `setIRQ` is called
/// whenever its level changes (in order, outside the register lock). `setIRQ` and `output`
/// must not call back into this device.
public final class Serial16550: PortIODevice {
    private let state = Mutex(UARTRegisters())
    /// Serializes `setIRQ` calls and remembers the level last delivered.
    private let irqDelivery = Mutex(false)
    private let output: @Sendable ([UInt8]) -> Void
    private let setIRQ: @Sendable (Bool) -> Void

    public init(output: @escaping @Sendable ([UInt8]) -> Void, setIRQ: @escaping @Sendable (Bool) -> Void) {
        self.output = output
        self.setIRQ = setIRQ
    }

    /// Host input (stdin) into the RX FIFO; raises the RX interrupt if enabled.
    public func receive(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        state.withLock { $0.receive(bytes) }
        deliverIRQ()
    }

    public func read(offset: UInt16, size: Int) -> UInt32 {
        let value = state.withLock { $0.read(offset) }
        deliverIRQ()
        return UInt32(value)
    }

    public func write(offset: UInt16, size: Int, value: UInt32) {
        let transmitted = state.withLock { $0.write(offset, UInt8(truncatingIfNeeded: value)) }
        if let byte = transmitted {
            output([byte])
        }
        deliverIRQ()
    }

    /// Brings the external line in step with the registers. Re-reading the level under
    /// `irqDelivery` keeps concurrent accesses from delivering stale levels out of order.
    private func deliverIRQ() {
        irqDelivery.withLock { delivered in
            let level = state.withLock { $0.interruptPending }
            if level != delivered {
                delivered = level
                setIRQ(level)
            }
        }
    }
}

extension Serial16550 {
    /// The registers and unread received bytes.
    public func snapshot() -> UARTState {
        state.withLock { r in
            UARTState(receiveFIFO: Array(r.rx[r.rxHead...]), interruptEnable: r.ier, lineControl: r.lcr,
                      modemControl: r.mcr, scratch: r.scr, divisorLow: r.divisorLow, divisorHigh: r.divisorHigh,
                      fifoEnabled: r.fifoEnabled, lineStatusErrors: r.lsrErrors, modemStatusDeltas: r.msrDeltas,
                      transmitterEmptyInterrupt: r.thrInterrupt)
        }
    }

    /// Takes `saved` as its registers and drives the interrupt line to the level they imply.
    public func restore(_ saved: UARTState) throws(DeviceStateError) {
        guard saved.receiveFIFO.count <= UARTRegisters.rxCapacity else {
            throw .invalid(device: "UART", reason: "\(saved.receiveFIFO.count) received bytes (at most \(UARTRegisters.rxCapacity))")
        }
        var r = UARTRegisters()
        r.rx = saved.receiveFIFO
        r.ier = saved.interruptEnable & 0x0F
        r.lcr = saved.lineControl
        r.mcr = saved.modemControl & 0x1F
        r.scr = saved.scratch
        r.divisorLow = saved.divisorLow
        r.divisorHigh = saved.divisorHigh
        r.fifoEnabled = saved.fifoEnabled
        r.lsrErrors = saved.lineStatusErrors & UARTRegisters.lsrErrorBits
        r.msrDeltas = saved.modemStatusDeltas & 0x0F
        r.thrInterrupt = saved.transmitterEmptyInterrupt
        state.withLock { $0 = r }
        deliverIRQ()
    }
}

/// The register file and FIFO logic of a 16550A, free of locking and callbacks.
struct UARTRegisters {
    // Register offsets.
    static let rbrTHR: UInt16 = 0, ier: UInt16 = 1, iirFCR: UInt16 = 2, lcr: UInt16 = 3
    static let mcr: UInt16 = 4, lsr: UInt16 = 5, msr: UInt16 = 6, scr: UInt16 = 7

    // IER bits.
    static let ierRDI: UInt8 = 0x01, ierTHRI: UInt8 = 0x02, ierRLSI: UInt8 = 0x04, ierMSI: UInt8 = 0x08
    // IIR values.
    static let iirNone: UInt8 = 0x01, iirMSI: UInt8 = 0x00, iirTHRI: UInt8 = 0x02
    static let iirRDI: UInt8 = 0x04, iirRLSI: UInt8 = 0x06, iirFIFOEnabled: UInt8 = 0xC0
    // LSR bits.
    static let lsrDR: UInt8 = 0x01, lsrOE: UInt8 = 0x02, lsrTHRE: UInt8 = 0x20, lsrTEMT: UInt8 = 0x40
    static let lsrErrorBits: UInt8 = 0x1E  // OE | PE | FE | BI
    // LCR / MCR / FCR bits.
    static let lcrDLAB: UInt8 = 0x80, mcrLoop: UInt8 = 0x10
    static let fcrEnable: UInt8 = 0x01, fcrClearRX: UInt8 = 0x02

    /// Host input beyond this is dropped and reported as an overrun.
    static let rxCapacity = 4096

    var rx: [UInt8] = []
    var rxHead = 0
    var ier: UInt8 = 0
    var lcr: UInt8 = 0
    var mcr: UInt8 = 0
    var scr: UInt8 = 0
    var divisorLow: UInt8 = 0x0C  // 9600 baud
    var divisorHigh: UInt8 = 0
    var fifoEnabled = false
    var lsrErrors: UInt8 = 0
    /// MSR delta bits (DCTS, DDSR, TERI, DDCD).
    var msrDeltas: UInt8 = 0
    /// Latched THR-empty interrupt; cleared by an IIR read that reports it or by a THR write.
    var thrInterrupt = false

    var rxCount: Int { rx.count - rxHead }
    var loopback: Bool { mcr & Self.mcrLoop != 0 }

    /// MSR status bits (CTS, DSR, RI, DCD). In loopback they mirror RTS, DTR, OUT1, OUT2;
    /// otherwise the modem is always present and ready (no ring).
    var modemStatus: UInt8 {
        guard loopback else { return 0xB0 }
        var bits: UInt8 = 0
        if mcr & 0x02 != 0 { bits |= 0x10 }  // RTS -> CTS
        if mcr & 0x01 != 0 { bits |= 0x20 }  // DTR -> DSR
        if mcr & 0x04 != 0 { bits |= 0x40 }  // OUT1 -> RI
        if mcr & 0x08 != 0 { bits |= 0x80 }  // OUT2 -> DCD
        return bits
    }

    var lineStatus: UInt8 {
        var value = Self.lsrTHRE | Self.lsrTEMT | lsrErrors
        if rxCount > 0 { value |= Self.lsrDR }
        return value
    }

    /// The highest-priority pending interrupt source, without the FIFO bits.
    var interruptIdentification: UInt8 {
        if ier & Self.ierRLSI != 0, lsrErrors != 0 { return Self.iirRLSI }
        if ier & Self.ierRDI != 0, rxCount > 0 { return Self.iirRDI }
        if ier & Self.ierTHRI != 0, thrInterrupt { return Self.iirTHRI }
        if ier & Self.ierMSI != 0, msrDeltas != 0 { return Self.iirMSI }
        return Self.iirNone
    }

    var interruptPending: Bool { interruptIdentification != Self.iirNone }

    mutating func receive(_ bytes: [UInt8]) {
        for byte in bytes {
            if rxCount >= Self.rxCapacity {
                lsrErrors |= Self.lsrOE
                break
            }
            rx.append(byte)
        }
    }

    private mutating func popRX() -> UInt8 {
        guard rxCount > 0 else { return 0 }
        let byte = rx[rxHead]
        rxHead += 1
        if rxHead == rx.count {
            rx.removeAll(keepingCapacity: true)
            rxHead = 0
        } else if rxHead >= 1024 {
            rx.removeFirst(rxHead)
            rxHead = 0
        }
        return byte
    }

    private mutating func clearRX() {
        rx.removeAll(keepingCapacity: true)
        rxHead = 0
    }

    mutating func read(_ offset: UInt16) -> UInt8 {
        switch offset {
        case Self.rbrTHR:
            return lcr & Self.lcrDLAB != 0 ? divisorLow : popRX()
        case Self.ier:
            return lcr & Self.lcrDLAB != 0 ? divisorHigh : ier
        case Self.iirFCR:
            let id = interruptIdentification
            if id == Self.iirTHRI { thrInterrupt = false }
            return id | (fifoEnabled ? Self.iirFIFOEnabled : 0)
        case Self.lcr:
            return lcr
        case Self.mcr:
            return mcr
        case Self.lsr:
            let value = lineStatus
            lsrErrors = 0
            return value
        case Self.msr:
            let value = modemStatus | msrDeltas
            msrDeltas = 0
            return value
        case Self.scr:
            return scr
        default:
            return 0xFF
        }
    }

    /// Applies a register write; returns the byte to transmit to the host, if any.
    mutating func write(_ offset: UInt16, _ value: UInt8) -> UInt8? {
        switch offset {
        case Self.rbrTHR:
            if lcr & Self.lcrDLAB != 0 {
                divisorLow = value
                return nil
            }
            // The byte leaves instantly, so the transmitter is empty again at once: the write
            // clears the THRE interrupt and completion re-arms it.
            thrInterrupt = ier & Self.ierTHRI != 0
            if loopback {
                receive([value])
                return nil
            }
            return value
        case Self.ier:
            if lcr & Self.lcrDLAB != 0 {
                divisorHigh = value
                return nil
            }
            let newIER = value & 0x0F
            // Enabling THRI with the transmitter empty raises THRE at once (the 8250 driver's
            // autoconfig and THRE-bug test rely on this).
            if (ier ^ newIER) & Self.ierTHRI != 0 {
                thrInterrupt = newIER & Self.ierTHRI != 0
            }
            ier = newIER
        case Self.iirFCR:
            let enable = value & Self.fcrEnable != 0
            if enable != fifoEnabled || value & Self.fcrClearRX != 0 {
                clearRX()
            }
            fifoEnabled = enable
        case Self.lcr:
            lcr = value
        case Self.mcr:
            let before = modemStatus
            mcr = value & 0x1F
            let after = modemStatus
            let changed = before ^ after
            if changed & 0x10 != 0 { msrDeltas |= 0x01 }  // DCTS
            if changed & 0x20 != 0 { msrDeltas |= 0x02 }  // DDSR
            if before & 0x40 != 0, after & 0x40 == 0 { msrDeltas |= 0x04 }  // TERI
            if changed & 0x80 != 0 { msrDeltas |= 0x08 }  // DDCD
        case Self.scr:
            scr = value
        default:
            break  // LSR and MSR are read-only.
        }
        return nil
    }
}

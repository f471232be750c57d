import Synchronization

/// The virtio-mmio transport, version 2 (modern only): feature negotiation, queue setup and the
/// status handshake, with queue notifications served synchronously on the notifying vCPU thread.
/// The interrupt line is level-triggered: high while InterruptStatus is non-zero.
public final class VirtioMMIOTransport: MMIODevice {
    /// Size of the register window (the ACPI _CRS length).
    public static let windowSize: UInt64 = VirtioMMIORegister.windowSize

    private struct State {
        var deviceFeaturesSel: UInt32 = 0
        var driverFeaturesSel: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSel: UInt32 = 0
        var queues: [Virtqueue]
        var interruptStatus: UInt32 = 0
        var status: UInt32 = 0
    }

    private let device: any VirtioDeviceBackend
    private let memory: any VirtioMemory
    private let setIRQ: @Sendable (Bool) -> Void
    private let state: Mutex<State>

    public init(device: any VirtioDeviceBackend, memory: any VirtioMemory, setIRQ: @escaping @Sendable (Bool) -> Void) {
        self.device = device
        self.memory = memory
        self.setIRQ = setIRQ
        self.state = Mutex(State(queues: Array(repeating: Virtqueue(), count: device.queueCount)))
    }

    /// The device status register (for tests and diagnostics).
    public var status: UInt32 { state.withLock { $0.status } }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = 0 }
        if offset >= VirtioMMIORegister.config {
            let config = device.config
            for i in data.indices {
                let at = Int(offset - VirtioMMIORegister.config) + i
                if at < config.count { data[i] = config[at] }
            }
            return
        }
        guard data.count == 4 else { return }
        let value = state.withLock { register(offset, $0) }
        for i in 0..<4 { data[i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard data.count == 4, offset < VirtioMMIORegister.config else { return }   // config space is read-only
        let value = (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[$1]) << (8 * $1) }
        state.withLock { setRegister(offset, value, &$0) }
    }

    private func register(_ offset: UInt64, _ s: State) -> UInt32 {
        typealias R = VirtioMMIORegister
        let queue = s.queues.indices.contains(Int(s.queueSel)) ? s.queues[Int(s.queueSel)] : nil
        switch offset {
        case R.magicValue: return R.magic
        case R.version: return 2
        case R.deviceID: return device.deviceID
        case R.vendorID: return R.vendor
        case R.deviceFeatures:
            return s.deviceFeaturesSel < 2 ? UInt32(truncatingIfNeeded: device.features >> (32 * UInt64(s.deviceFeaturesSel))) : 0
        case R.queueNumMax: return queue == nil ? 0 : UInt32(device.queueMaxSize)
        case R.queueNum: return UInt32(queue?.size ?? 0)
        case R.queueReady: return queue?.ready == true ? 1 : 0
        case R.interruptStatus: return s.interruptStatus
        case R.status: return s.status
        case R.queueDescLow: return UInt32(truncatingIfNeeded: queue?.descriptorTable ?? 0)
        case R.queueDescHigh: return UInt32(truncatingIfNeeded: (queue?.descriptorTable ?? 0) >> 32)
        case R.queueDriverLow: return UInt32(truncatingIfNeeded: queue?.driverRing ?? 0)
        case R.queueDriverHigh: return UInt32(truncatingIfNeeded: (queue?.driverRing ?? 0) >> 32)
        case R.queueDeviceLow: return UInt32(truncatingIfNeeded: queue?.deviceRing ?? 0)
        case R.queueDeviceHigh: return UInt32(truncatingIfNeeded: (queue?.deviceRing ?? 0) >> 32)
        case R.configGeneration: return 0
        default: return 0
        }
    }

    private func setRegister(_ offset: UInt64, _ value: UInt32, _ s: inout State) {
        typealias R = VirtioMMIORegister
        let q = Int(s.queueSel)
        let queueWritable = s.queues.indices.contains(q) && !s.queues[q].ready
        func low(_ old: UInt64) -> UInt64 { old & 0xFFFF_FFFF_0000_0000 | UInt64(value) }
        func high(_ old: UInt64) -> UInt64 { old & 0xFFFF_FFFF | UInt64(value) << 32 }
        switch offset {
        case R.deviceFeaturesSel: s.deviceFeaturesSel = value
        case R.driverFeaturesSel: s.driverFeaturesSel = value
        case R.driverFeatures:
            guard s.driverFeaturesSel < 2, s.status & VirtioConstants.statusFeaturesOK == 0 else { return }
            let shift = 32 * UInt64(s.driverFeaturesSel)
            s.driverFeatures = s.driverFeatures & ~(0xFFFF_FFFF << shift) | UInt64(value) << shift
        case R.queueSel: s.queueSel = value
        case R.queueNum where queueWritable: s.queues[q].size = UInt16(truncatingIfNeeded: min(value, 0xFFFF))
        case R.queueDescLow where queueWritable: s.queues[q].descriptorTable = low(s.queues[q].descriptorTable)
        case R.queueDescHigh where queueWritable: s.queues[q].descriptorTable = high(s.queues[q].descriptorTable)
        case R.queueDriverLow where queueWritable: s.queues[q].driverRing = low(s.queues[q].driverRing)
        case R.queueDriverHigh where queueWritable: s.queues[q].driverRing = high(s.queues[q].driverRing)
        case R.queueDeviceLow where queueWritable: s.queues[q].deviceRing = low(s.queues[q].deviceRing)
        case R.queueDeviceHigh where queueWritable: s.queues[q].deviceRing = high(s.queues[q].deviceRing)
        case R.queueReady:
            guard s.queues.indices.contains(q) else { return }
            if value & 1 == 0 { s.queues[q].ready = false; return }
            if s.queues[q].isValid(maxSize: device.queueMaxSize, memory: memory) {
                s.queues[q].ready = true
            } else {
                needsReset(&s)
            }
        case R.queueNotify: process(queue: Int(value & 0xFFFF), &s)
        case R.interruptACK:
            s.interruptStatus &= ~value
            if s.interruptStatus == 0 { setIRQ(false) }
        case R.status: setStatus(value, &s)
        default: break
        }
    }

    private func setStatus(_ value: UInt32, _ s: inout State) {
        if value == 0 {
            let hadInterrupt = s.interruptStatus != 0
            s = State(queues: Array(repeating: Virtqueue(), count: device.queueCount))
            if hadInterrupt { setIRQ(false) }
            return
        }
        var value = value
        let offered = device.features
        if value & VirtioConstants.statusFeaturesOK != 0, s.status & VirtioConstants.statusFeaturesOK == 0 {
            // Accept only a subset of what we offer, and only modern drivers.
            let acceptable = s.driverFeatures & ~offered == 0 && s.driverFeatures & VirtioConstants.featureVersion1 != 0
            if !acceptable { value &= ~VirtioConstants.statusFeaturesOK }
        }
        s.status = value | s.status & VirtioConstants.statusNeedsReset
    }

    /// Serves every posted chain of queue `index`, then raises the used-buffer interrupt.
    private func process(queue index: Int, _ s: inout State) {
        guard s.queues.indices.contains(index), s.queues[index].ready,
              s.status & VirtioConstants.statusDriverOK != 0,
              s.status & VirtioConstants.statusNeedsReset == 0 else { return }
        var used = false
        do {
            while let (head, buffers) = try s.queues[index].nextChain(memory: memory) {
                let written = try device.handle(queue: index, chain: buffers, memory: memory)
                try s.queues[index].pushUsed(head: head, length: written, memory: memory)
                used = true
            }
        } catch {
            needsReset(&s)
        }
        if used { raise(VirtioConstants.interruptUsedBuffer, &s) }
    }

    /// DEVICE_NEEDS_RESET: stop every queue and tell the driver through a configuration interrupt.
    private func needsReset(_ s: inout State) {
        s.status |= VirtioConstants.statusNeedsReset
        for i in s.queues.indices { s.queues[i].ready = false }
        raise(VirtioConstants.interruptConfigChange, &s)
    }

    private func raise(_ bits: UInt32, _ s: inout State) {
        s.interruptStatus |= bits
        setIRQ(true)
    }
}

extension VirtioMMIOTransport {
    /// The transport's registers and queues (take it while no vCPU is in a notify).
    public func snapshot() -> VirtioMMIOState {
        state.withLock { s in
            VirtioMMIOState(deviceFeaturesSelect: s.deviceFeaturesSel, driverFeaturesSelect: s.driverFeaturesSel,
                            driverFeatures: s.driverFeatures, queueSelect: s.queueSel, queues: s.queues.map(\.savedState),
                            interruptStatus: s.interruptStatus, status: s.status)
        }
    }

    /// Takes `saved` as its state and drives the interrupt line to the level it implies. The saved
    /// state must fit this device: as many queues, only offered features negotiated, and every ready
    /// queue a layout the device would accept now (inside this guest's memory).
    /// A slot no driver has touched (every register and queue as at reset: the snapshot of a guest
    /// waiting for its work, whose virtio drivers load only afterwards) fits any device, so that
    /// one snapshot serves runs with and without disks (--disk, --root) in any slot.
    public func restore(_ saved: VirtioMMIOState) throws(DeviceStateError) {
        if saved.isUntouched {
            state.withLock { s in
                s = State(queues: Array(repeating: Virtqueue(), count: device.queueCount))
                setIRQ(false)
            }
            return
        }
        guard saved.queues.count == device.queueCount else {
            throw .invalid(device: "virtio", reason: "\(saved.queues.count) queues, the device has \(device.queueCount)")
        }
        guard saved.driverFeatures & ~device.features == 0 else {
            throw .invalid(device: "virtio", reason: "driver features 0x\(String(saved.driverFeatures, radix: 16)) were never offered")
        }
        for (i, q) in saved.queues.enumerated() where q.ready {
            guard Virtqueue(saved: q).isValid(maxSize: device.queueMaxSize, memory: memory) else {
                throw .invalid(device: "virtio", reason: "ready queue \(i) has a layout the device refuses")
            }
            guard q.usedIndex &- q.lastAvailIndex == 0 else {
                throw .invalid(device: "virtio", reason: "queue \(i) consumed \(q.lastAvailIndex) chains but used \(q.usedIndex)")
            }
        }
        state.withLock { s in
            s = State(queues: saved.queues.map(Virtqueue.init(saved:)))
            s.deviceFeaturesSel = saved.deviceFeaturesSelect
            s.driverFeaturesSel = saved.driverFeaturesSelect
            s.driverFeatures = saved.driverFeatures
            s.queueSel = saved.queueSelect
            s.interruptStatus = saved.interruptStatus
            s.status = saved.status
            setIRQ(s.interruptStatus != 0)
        }
    }
}

extension VirtioMMIOState {
    /// Whether no driver has touched the transport: every register zero, every queue as at reset.
    public var isUntouched: Bool {
        deviceFeaturesSelect == 0 && driverFeaturesSelect == 0 && driverFeatures == 0 && queueSelect == 0
            && interruptStatus == 0 && status == 0 && queues.allSatisfy { $0 == Virtqueue().savedState }
    }
}

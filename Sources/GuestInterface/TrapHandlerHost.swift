/// A guest whose trap handler can be installed while it runs (`leakvisor attach`): our own
/// `Machine`. Install with the guest paused; the handler acts from the guest's resumption on.
public protocol TrapHandlerHost: InspectableGuest {
    func installTrapHandler(_ handler: (any GuestTrapHandler)?)
}

// The claim routes' paths as the router declares them (route templates): one statement for the
// routes, the shedding handler and the request metrics' labels.
enum ClaimRoutes {
    static let reserve = "/v1/drops/{id}/reserve"
    static let purchase = "/v1/drops/{id}/purchase"
    static let cancel = "/v1/drops/{id}/reservation"
}

// The claim routes' paths as the router declares them (route templates): one statement for the
// routes, the OpenAPI document, the shedding handler and the metrics' labels.
enum ClaimRoutes {
    static let reserve = "/v1/drops/{id}/reserve"
    static let purchase = "/v1/drops/{id}/purchase"
    static let cancel = "/v1/drops/{id}/reservation"

    /// What comes before and after `{id}` in a template.
    static func parts(of template: String) -> (prefix: Substring, suffix: Substring) {
        let id = template.range(of: "{id}")!
        return (template[..<id.lowerBound], template[id.upperBound...])
    }
}

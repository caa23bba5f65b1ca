// The drop routes' paths as the router declares them (route templates): one statement for the
// routes, the OpenAPI document, the live page, the shedding handler and the metrics' labels.
import Foundation

enum RoutePaths {
    static let drops = "/v1/drops"
    static let drop = "/v1/drops/{id}"
    static let myReservations = "/v1/reservations/me"
    /// The live events' WebSocket (and, on a plain GET, a 426 that says so).
    static let live = "/v1/live"
    static let reserve = "/v1/drops/{id}/reserve"
    static let purchase = "/v1/drops/{id}/purchase"
    static let cancel = "/v1/drops/{id}/reservation"

    /// A template with its `{id}` filled in.
    static func path(_ template: String, id: Int64) -> String {
        template.replacingOccurrences(of: "{id}", with: String(id))
    }

    /// What comes before and after `{id}` in a template.
    static func parts(of template: String) -> (prefix: Substring, suffix: Substring) {
        let id = template.range(of: "{id}")!
        return (template[..<id.lowerBound], template[id.upperBound...])
    }
}

// Audit records: security-relevant events (auth failures, forbidden attempts, abusive closes,
// secret reloads) as the edge stores them in its audit log and writes them to its log lines.
#pragma once

#include <boost/json/object.hpp>

#include <optional>
#include <string>

#include "waymark/frames.h"

namespace waymark {

struct AuditRecord {
  TimeMs ts = 0;
  std::string event;  // auth_failed, forbidden, abusive, too_many_connections,
                      // secret_reload, secret_reload_failed
  std::optional<std::string> tenant, user, conv, frame, peer, detail;
};

// {"ts":…,"event":…} plus each field that is set: the stored form, and the log line's fields.
boost::json::object audit_object(const AuditRecord& record);
std::string audit_json(const AuditRecord& record);

}  // namespace waymark

// Strongroom from C++ through the same header: RAII owners for the handles and strings the
// library hands out, an exception carrying the status and message of a failed call.
//
//   c++ -std=c++17 quickstart.cpp $(pkg-config --cflags --libs strongroom) -o quickstart
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include "strongroom.h"

namespace sr {

struct error : std::runtime_error {
  sr_result code;
  error(sr_result c, const std::string &what)
      : std::runtime_error(what + ": " + sr_result_name(c) + ": " + sr_error_message()), code(c) {}
};

inline void check(sr_result rc, const char *what) {
  if (rc != SR_OK) throw error(rc, what);
}

struct string_free {
  void operator()(char *s) const { sr_string_free(s); }
};
using string = std::unique_ptr<char, string_free>;

struct config_free {
  void operator()(sr_config *c) const { sr_config_free(c); }
};
struct client_free {
  void operator()(sr_client *c) const { sr_client_free(c); }
};
struct engine_close {
  void operator()(sr_strongroom *s) const { sr_close(s); }
};

}  // namespace sr

int main() {
  try {
    sr_config *raw_config = nullptr;
    sr::check(sr_config_dev(&raw_config), "sr_config_dev");
    std::unique_ptr<sr_config, sr::config_free> config(raw_config);

    sr_strongroom *raw_sr = nullptr;
    sr::check(sr_open(config.get(), &raw_sr), "sr_open");
    std::unique_ptr<sr_strongroom, sr::engine_close> engine(raw_sr);

    char *raw_token = nullptr;
    sr::check(sr_dev_root_token(engine.get(), &raw_token), "sr_dev_root_token");
    sr::string token(raw_token);

    sr_client *raw_client = nullptr;
    sr::check(sr_client_new(engine.get(), token.get(), &raw_client), "sr_client_new");
    std::unique_ptr<sr_client, sr::client_free> client(raw_client);

    uint64_t version = 0;
    sr::check(sr_kv_put(client.get(), "secret", "app/db", R"({"username":"app","password":"pw"})", &version),
              "sr_kv_put");
    char *raw_json = nullptr;
    sr::check(sr_kv_get(client.get(), "secret", "app/db", &raw_json), "sr_kv_get");
    sr::string json(raw_json);
    std::printf("C++: wrote and read secret/app/db version %llu\n", static_cast<unsigned long long>(version));

    try {
      sr::check(sr_kv_get(client.get(), "nowhere", "x", &raw_json), "sr_kv_get");
    } catch (const sr::error &e) {
      std::printf("C++: a failed call throws: status %s\n", sr_result_name(e.code));
    }
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

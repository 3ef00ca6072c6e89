// header_cxx.cpp: the public header compiles as C++ and its functions link from C++.
#include "tandem.h"

#include <cstdio>
#include <cstring>

int main() {
    tnd_model *model = nullptr;
    tnd_model_params params = tnd_model_default_params();
    tnd_status st = tnd_model_open("/nonexistent/file.gguf", &params, &model);
    bool ok = st == TND_ERR_IO && model == nullptr && std::strlen(tnd_last_error()) > 0;
    ok = ok && std::strcmp(tnd_type_name(TND_TYPE_Q4_K), "q4_K") == 0;
    std::printf("header_cxx: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

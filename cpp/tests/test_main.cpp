#include <cstdio>
#include <cstring>

#include "testing.h"

int main(int argc, char** argv) {
    int failed = 0, run = 0;
    for (const testing::Case& c : testing::registry()) {
        if (argc > 1 && c.name.find(argv[1]) == std::string::npos) continue;
        ++run;
        try {
            c.body();
            std::printf("PASS %s\n", c.name.c_str());
        } catch (const std::exception& e) {
            ++failed;
            std::printf("FAIL %s: %s\n", c.name.c_str(), e.what());
        }
    }
    std::printf("%d of %d tests passed\n", run - failed, run);
    return failed == 0 && run > 0 ? 0 : 1;
}

#ifndef CLIBCRYPTO_H
#define CLIBCRYPTO_H
// Thin unsafe layer over OpenSSL's libcrypto (libssl-dev): the EVP message-digest calls. No logic.
#include <openssl/evp.h>
#endif

#include "celfdw.h"

module copperbench

go 1.19

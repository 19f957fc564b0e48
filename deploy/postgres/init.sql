-- Run once, when the PostgreSQL volume is first initialised (POSTGRES_DB made lienthong_axis already).
CREATE DATABASE lienthong_agency OWNER lienthong;
